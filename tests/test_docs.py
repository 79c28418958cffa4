"""The pages users read: what the landing page keeps, what no page says, and that the site lists them all.

The pages' examples themselves run as tests of their own (see the repository's conftest.py);
`mkdocs build --strict` in `.ci/run` checks every link and anchor.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BUILDING = re.compile(r"issue [0-9]+\)|\bissue #?[0-9]+|meant to be merged|until the .* (branch|lands)|FIELD-NOTES|\.\./shared|/work/", re.I)
"""How the project is being built, rather than what a user can do: no page speaks of it."""


def _nav_pages(nav: list) -> set[str]:
    found: set[str] = set()
    for entry in nav:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            found |= _nav_pages(value) if isinstance(value, list) else {value}
    return found


def test_the_readme_is_a_short_landing_page_that_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 250
    first_block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert first_block and text.index(first_block.group(0)) < 200, "the two commands come first"
    install_and_demo, install_and_test = first_block.group(1).strip().splitlines()
    assert "pip install" in install_and_demo and install_and_demo.endswith("streamreel demo")
    assert "pip install -e '.[test]'" in install_and_test and "pytest" in install_and_test


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_page_speaks_of_how_the_project_is_built(page: Path) -> None:
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        assert not BUILDING.search(line), f"{page.name}:{number}: {line.strip()}"


def test_every_page_is_in_the_site_navigation() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert _nav_pages(config["nav"]) == {"index.md"} | {p.name for p in PAGES if p.parent == ROOT / "docs"}
