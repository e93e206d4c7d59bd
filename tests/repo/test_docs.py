"""The docs live in the repository: every page linked from a short README, none citing
the handbook beside the checkout, and the settings page equal to shared/settings.py."""

import re
from pathlib import Path

from shared.settings import DEFAULTS, SECRETS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
#: every variable shared/settings.py reads: env.<kind>("NAME", ...)
READ = set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', (ROOT / "shared/settings.py").read_text()))


def settings_table() -> dict[str, str]:
    """Each variable of docs/settings.md's table and its default cell's value for it."""
    table: dict[str, str] = {}
    for line in (ROOT / "docs/settings.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not line.startswith("| `") or len(cells) < 3:
            continue
        names = re.findall(r"`([A-Z_]+)`", cells[0])
        values = re.findall(r"`([^`]*)`", cells[1]) or [cells[1]]
        for i, name in enumerate(names):
            table[name] = values[i] if i < len(values) else values[-1]
    return table


def test_the_readme_is_short_and_links_every_docs_page():
    assert len(README.splitlines()) <= 250
    assert len(DOCS) >= 10
    for page in DOCS:
        assert f"(docs/{page.name})" in README, f"{page.name} is not linked from the README"


def test_links_between_docs_pages_lead_to_pages_that_exist():
    for page in [ROOT / "README.md", *DOCS]:
        for target in re.findall(r"\]\(([\w./-]+\.md)\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_nothing_cites_the_handbook_beside_the_checkout():
    texts = [*ROOT.glob("*.md"), *DOCS, *(ROOT / "bench").glob("*.md")]
    for top in ("selector", "publisher", "webhook_gateway", "ingestor", "shared", "ops",
                "webscraper_sim", "demo", "bench", "migrations", "tests"):  # fmt: skip
        texts += (ROOT / top).rglob("*.py")
    handbook = "../" + "shared"  # spelt in two so that this file passes its own test
    for path in texts:
        if path == Path(__file__):
            continue
        text = path.read_text()
        assert handbook not in text, path
        for page in ("CONTRACT.md", "DOMAIN.md", "WEBSCRAPER_API.md", "RABBITMQ.md"):
            assert page not in text, f"{path} cites {page}, which a clone does not have"


def test_the_settings_page_lists_every_variable_with_its_default():
    table = settings_table()
    assert set(table) == READ, (sorted(READ - set(table)), sorted(set(table) - READ))
    for name, default in DEFAULTS.items():
        assert table[name] == default, f"{name}: docs say {table[name]!r}, code {default!r}"
    for name in SECRETS:
        assert table[name] == "required"
