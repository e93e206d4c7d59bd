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
