"""The design notes the code cites are in the repository, and every citation points into them.

A module cites a section as `docs/<file>.md, "<heading>"` with the heading's exact text, for
example (docs/design.md, "Who it is for"). These tests read every *.py file of the
repository and check that each cited document exists and holds the cited heading, and that no
file cites the design, reference or style notes by the names they had before they were shipped
in docs/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# `docs/<name>.md`, then optionally `, "<heading>"`; a heading may wrap onto the next line of a
# docstring or a comment.
CITATION = re.compile(r'docs/([\w.-]+\.md)(?:,\s+"([^"]+)")?')
# The documents' former names (pieces, so that this file does not match itself).
OLD_NAMES = re.compile(r"\b(?:" + "|".join(("DES" + "IGN", "REF" + "ERENCE", "ST" + "YLE")) + r")\.md\b")


def python_files() -> list[Path]:
    """Every *.py of the repository, outside hidden folders and caches."""
    files = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if any(p.startswith(".") or p == "__pycache__" or p.endswith(".egg-info") for p in parts):
            continue
        files.append(path)
    return files


def headings(document: Path) -> set[str]:
    """The text of every Markdown heading of `document` (lines starting with #), outside code blocks."""
    found, in_code = set(), False
    for line in document.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)):
            found.add(m.group(1))
    return found


def one_line(heading: str) -> str:
    """A heading wrapped over lines of a docstring or comment, back on one line."""
    return re.sub(r"\s*\n\s*(?:#\s*)?", " ", heading).strip()


def citations(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, document, heading or None) for each docs/ citation in `path`."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1),
             one_line(m.group(2)) if m.group(2) else None)
            for m in CITATION.finditer(text)]


def test_the_cited_documents_are_in_the_repository():
    assert (DOCS / "design.md").is_file()
    assert (DOCS / "reference.md").is_file()
    assert {"Who it is for", "Storage schema", "Energy in an interval"} <= headings(DOCS / "design.md")
    assert "Modbus meters" in headings(DOCS / "reference.md")


def test_the_checks_see_a_wrapped_citation_and_an_old_name():
    """The patterns below catch what they are meant to (a check that cannot fail checks nothing)."""
    docs = "docs/"  # apart, so that the scan of this file below does not read these as citations
    text = '"""Rules (' + docs + 'design.md, "Time is UTC inside, the site\'s\n    time zone at the edges")."""'
    [m] = CITATION.finditer(text)
    assert (m.group(1), one_line(m.group(2))) == (
        "design.md", "Time is UTC inside, the site's time zone at the edges")
    comment = "# Measurements (" + docs + 'design.md, "Storage\n# schema").'
    assert one_line(CITATION.search(comment).group(2)) == "Storage schema"
    assert OLD_NAMES.search("(" + "DES" + "IGN.md, decision 3)")
    assert not OLD_NAMES.search("(" + docs + 'design.md, "Edge timestamps")')


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_citations_name_an_existing_document_and_heading(path):
    wrong = []
    for line, document, heading in citations(path):
        if not (DOCS / document).is_file():
            wrong.append(f"{path.relative_to(ROOT)}:{line}: docs/{document} does not exist")
        elif heading is not None and heading not in headings(DOCS / document):
            wrong.append(f'{path.relative_to(ROOT)}:{line}: docs/{document} has no heading "{heading}"')
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_citation_of_the_notes_by_their_former_names(path):
    text = path.read_text(encoding="utf-8")
    wrong = [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: cites {m.group(0)}; "
             f'cite docs/<file>.md, "<heading>" (a heading of docs/design.md or docs/reference.md)'
             for m in OLD_NAMES.finditer(text)]
    assert not wrong, "\n".join(wrong)
