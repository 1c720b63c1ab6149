"""The documentation stays usable: every example config in docs/examples/ loads with the checker that
``edgeweave config check`` runs, the README stays short enough for a newcomer, and every relative link
in the README and docs/ points to a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgeweave.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = sorted((DOCS / "examples").glob("*.toml"))
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
README_MAX_LINES = 300
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def test_there_is_an_example_per_role() -> None:
    assert {p.stem for p in EXAMPLES} >= {"device", "coordinator", "cloud"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_config_passes_the_checker(path: Path) -> None:
    role = path.stem
    cfg = load_config(path, role=role if role in ("device", "coordinator", "cloud") else None)
    assert cfg is not None


def test_readme_is_at_most_300_lines() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


def _relative_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())  # code samples are not links
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file(page: Path) -> None:
    missing = [t for t in _relative_links(page) if not (page.parent / t.split("#", 1)[0]).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"
