#!/usr/bin/env python3
"""Checks the internal links of the book (docs/src) and of README.md.

Every relative markdown link or image `[x](path#anchor)` must name a file or folder that
exists (relative to the file that links it), and an `#anchor` must be the slug of a
heading in the file it points to (GitHub's and mdBook's: lowercase, spaces to '-',
punctuation other than '-' and '_' dropped, '-1', '-2', ... for repeats). Every chapter
in docs/src/SUMMARY.md must exist, and every .md file in docs/src must be a chapter.
Links with a scheme (https:, mailto:, ...) are not checked; code blocks and inline code
are skipped. And the REST API chapter (docs/src/api.md) lists exactly the routes of the
server's route table (the `api_routes!` macro, wherever it lives).

Run from anywhere: `python3 docs/check-links.py`. Exits 1 and lists each broken link as
`file:line: link — reason`. Standard library only.
"""

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "docs" / "src"
SUMMARY = SRC / "SUMMARY.md"

# [text](target) and ![alt](target); the target may carry a "title".
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# [text]: target (reference definitions).
REFERENCE = re.compile(r"(?m)^[ \t]{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:[ \t]+\"[^\"]*\")?[ \t]*$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s{0,3}(```|~~~)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def prose(path):
    """The file's text with fenced code blocks and inline code blanked (newlines kept, so
    that offsets still give line numbers): links there are examples, not links."""
    out, fence = [], None
    for line in path.read_text(encoding="utf-8").split("\n"):
        m = FENCE.match(line)
        if m and (fence is None or line.strip().startswith(fence)):
            fence = m.group(1) if fence is None else None
            out.append("")
        else:
            out.append("" if fence else line)
    text = "\n".join(out)
    # A code span may wrap onto the next line, never across a blank one.
    blank = lambda c: re.sub(r"[^\n]", " ", c.group(0))
    return re.sub(r"(`+)(?:[^`\n]|\n(?![ \t]*\n))+?\1", blank, text)


def line_of(text, offset):
    return text.count("\n", 0, offset) + 1


def slug(heading):
    """A heading's anchor, as GitHub and mdBook make it."""
    text = re.sub(r"<[^>]+>", "", heading)  # inline HTML
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    text = text.replace("`", "").lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


_anchors = {}


def anchors(path):
    """Every heading anchor of a markdown file."""
    if path not in _anchors:
        found, seen = set(), {}
        fence = None
        for line in path.read_text(encoding="utf-8").splitlines():
            m = FENCE.match(line)
            if m:
                fence = m.group(1) if fence is None else (None if line.strip().startswith(fence) else fence)
                continue
            h = HEADING.match(line) if fence is None else None
            if h:
                base = slug(h.group(2))
                n = seen.get(base, 0)
                seen[base] = n + 1
                found.add(base if n == 0 else f"{base}-{n}")
        for explicit in re.findall(r"""<a\s+(?:name|id)=["']([^"']+)["']""", path.read_text(encoding="utf-8")):
            found.add(explicit)
        _anchors[path] = found
    return _anchors[path]


def check_link(source, number, target, problems):
    if SCHEME.match(target) or target.startswith("//"):
        return
    path_part, _, anchor = target.partition("#")
    where = f"{source.relative_to(ROOT)}:{number}: {target}"
    if path_part:
        dest = (source.parent / path_part).resolve()
        if not dest.exists():
            problems.append(f"{where} — no such file: {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
            return
        if path_part.startswith("/") or not dest.is_relative_to(ROOT):
            problems.append(f"{where} — points outside the repository")
            return
    else:
        dest = source
    if anchor:
        if dest.is_dir() or dest.suffix != ".md":
            problems.append(f"{where} — an anchor on a file that is not markdown")
        elif anchor not in anchors(dest):
            problems.append(f"{where} — no heading with anchor #{anchor} in {dest.relative_to(ROOT)}")


def check_file(path, problems):
    text = prose(path)
    for m in LINK.finditer(text):  # a link's text may wrap over lines
        check_link(path, line_of(text, m.start(1)), m.group(1), problems)
    for m in re.finditer(REFERENCE, text):
        check_link(path, line_of(text, m.start(1)), m.group(1), problems)


def check_summary(problems):
    """Every chapter in SUMMARY.md exists; every .md in docs/src is a chapter."""
    if not SUMMARY.exists():
        problems.append(f"{SUMMARY.relative_to(ROOT)}:0: — missing")
        return
    chapters = set()
    text = prose(SUMMARY)
    for m in LINK.finditer(text):
        target = m.group(1).partition("#")[0]
        if not target or SCHEME.match(target):
            continue
        dest = (SRC / target).resolve()
        chapters.add(dest)
        if not dest.is_file():
            problems.append(f"{SUMMARY.relative_to(ROOT)}:{line_of(text, m.start(1))}: {target} — chapter file missing")
    for md in sorted(SRC.rglob("*.md")):
        if md != SUMMARY and md.resolve() not in chapters:
            problems.append(f"{md.relative_to(ROOT)}:1: — not a chapter: add it to docs/src/SUMMARY.md")


API_CHAPTER = SRC / "api.md"
ROUTE = re.compile(r'^\s*(get|post|put|patch|delete)\s+"(/[^"]*)"\s*=>', re.M)
DOC_ROUTE = re.compile(r"^\|\s*`(GET|POST|PUT|PATCH|DELETE)`\s*\|\s*`(/[^`]*)`\s*\|", re.M)


def check_api_chapter(problems):
    """The REST API chapter's table and the route table name the same routes."""
    tables = []
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if d not in ("target", ".git", "node_modules")]
        for name in names:
            path = Path(folder) / name
            if name.endswith(".rs") and "api_routes! {" in path.read_text(encoding="utf-8", errors="replace"):
                tables.append(path)
    routes = {(m.upper(), p) for t in tables for m, p in ROUTE.findall(t.read_text(encoding="utf-8"))}
    where = API_CHAPTER.relative_to(ROOT)
    if not routes:
        problems.append(f"{where}:1: — no route table found (an `api_routes! {{` macro in a .rs file); update check_api_chapter")
        return
    text = API_CHAPTER.read_text(encoding="utf-8")
    documented = {}
    for m in DOC_ROUTE.finditer(text):
        documented[(m.group(1), m.group(2))] = line_of(text, m.start())
    table = ", ".join(str(t.relative_to(ROOT)) for t in tables)
    for method, path in sorted(routes - documented.keys(), key=lambda r: (r[1], r[0])):
        problems.append(f"{where}:1: {method} {path} — a route of {table} missing from the chapter's table")
    for method, path in sorted(documented.keys() - routes, key=lambda r: (r[1], r[0])):
        problems.append(f"{where}:{documented[(method, path)]}: {method} {path} — not a route of {table}")


def main():
    problems = []
    files = [ROOT / "README.md", *sorted(SRC.rglob("*.md"))]
    for path in files:
        if path != SUMMARY:  # its links are chapters, checked below
            check_file(path, problems)
    check_summary(problems)
    check_api_chapter(problems)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) in {len(files)} files")
        return 1
    print(f"ok: {len(files)} files, every internal link and anchor resolves, every chapter is in SUMMARY.md, the API chapter lists every route")
    return 0


if __name__ == "__main__":
    sys.exit(main())
