"""The README's first lines give the two commands a newcomer types; keep them true."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
RUN = (ROOT / "run").read_text()


def first_code_block() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert block and README.index(block.group(0)) < 200, "the commands come first"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines()]


def test_the_readme_starts_with_the_demo_and_test_commands():
    assert first_code_block() == ["./run demo", "./run test"]


def test_the_run_script_handles_both_commands():
    handled = set(re.findall(r"^  (\w+)\)", RUN, re.M))
    assert {"demo", "test"} <= handled


def test_ci_runs_the_readmes_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\./run test\b", ci, re.M)


def test_the_test_command_treats_no_tests_as_failure():
    assert '"$status" -eq 5' in RUN


def test_run_help_lists_the_commands_and_exits_0():
    import subprocess

    done = subprocess.run([str(ROOT / "run"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "./run demo" in done.stdout and "./run test" in done.stdout
    unknown = subprocess.run([str(ROOT / "run"), "nonsense"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown command: nonsense" in unknown.stderr


def test_no_package_says_it_is_not_built_yet():
    for init in ROOT.glob("*/__init__.py"):
        assert "not built yet" not in init.read_text().lower(), init


def test_the_readme_documents_every_operator_command_and_points_to_the_benchmarks():
    from ops.cli import COMMANDS

    for command in COMMANDS:
        assert f"trackfill {command}" in README, command
    assert "bench/README.md" in README and (ROOT / "bench" / "README.md").exists()
    for diary in ("this session", "earlier session", "last session"):
        assert diary not in README.lower() and diary not in (ROOT / "bench/README.md").read_text()


def test_the_benchmarks_make_custom_ids_of_the_tasks_shape():
    # a hand-written id of another shape is refused at the edge (400, dead letter), and a
    # benchmark of refusals measures nothing; they use TaskConfig.custom_id
    for script in (ROOT / "bench").glob("*.py"):
        assert not re.search(r"[\"']owryt-", script.read_text()), script.name
