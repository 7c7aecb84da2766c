"""Every relative link and image in README.md and docs/*.md points at a file that exists, and every
`#anchor` at a heading of that file (GitHub's heading ids)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# [text](target) and ![alt](target); a target may carry a "title" after a space.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(text: str) -> list[str]:
    """The page's lines outside fenced code blocks (a `# comment` in a bash block is not a heading)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def inline_code_removed(line: str) -> str:
    return re.sub(r"`[^`]*`", "", line)


def links(page: Path) -> list[str]:
    return [target for line in prose_lines(page.read_text(encoding="utf-8")) for target in LINK.findall(inline_code_removed(line))]


def github_anchor(heading: str) -> str:
    """GitHub's id for a heading: markup dropped, lower case, punctuation other than - and _ removed, spaces as -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.replace("`", "").replace("*", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The ids of a page's headings, with GitHub's -1, -2 suffixes for repeated ones."""
    seen: dict[str, int] = {}
    ids = set()
    for line in prose_lines(page.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        anchor = github_anchor(match.group(2))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        ids.add(anchor if count == 0 else f"{anchor}-{count}")
    return ids


def is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE))  # http:, https:, mailto:, ...


def shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in links(page):
        if is_external(target):
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            problems.append(f"{target}: {shown(linked)} does not exist")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{target}: no heading with id #{anchor} in {shown(linked)}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_relative_links_and_images_exist(page: Path) -> None:
    assert not broken_links(page), f"{page.relative_to(ROOT)}: " + "; ".join(broken_links(page))


def test_the_readme_shows_figures_and_maps_every_docs_page() -> None:
    readme_links = links(ROOT / "README.md")
    assert any(target.startswith("images/") for target in readme_links)
    mapped = {(ROOT / target.partition("#")[0]).resolve() for target in readme_links}
    assert set(PAGES[1:]) <= mapped, f"docs pages missing from the README's map: {sorted(set(PAGES[1:]) - mapped)}"


def test_the_checker_finds_broken_links_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"")
    (tmp_path / "docs" / "page.md").write_text(
        "# Page\n\n## Soft triplet: `soft_triplet` (parity)\n\n## Soft triplet: `soft_triplet` (parity)\n"
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        "![fig](images/a.png) [ok](docs/page.md#soft-triplet-soft_triplet-parity)\n"
        "[second](docs/page.md#soft-triplet-soft_triplet-parity-1)\n"
        "[web](https://example.org/x) `[not a link](nowhere.md)`\n"
        "```\n[in code](nowhere.md)\n# not a heading\n```\n"
        "![gone](images/b.png) [bad anchor](docs/page.md#nothing) [missing](docs/absent.md)\n"
    )
    problems = broken_links(readme)
    assert [problem.split(":")[0] for problem in problems] == ["images/b.png", "docs/page.md#nothing", "docs/absent.md"]
