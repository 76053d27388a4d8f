#!/usr/bin/env python3
"""No import cycles between the modules of one area of the host, or of the CLI crate.

Within `host/src/<area>/` (and `cli/src/`), each top-level module (a file, or a folder with its mod.rs) may
use its siblings, but never in a circle: a cycle means two modules that can only change
together, which is a module too many or a concern in the wrong one. The crates hold the
direction between areas (cargo refuses a cycle between crates); this holds it inside them.

Reads `use super::x`, `super::x::`, `crate::<area>::x` (and `super::{.., x, ..}`; in the
CLI crate, whose modules sit at its root, `crate::x`) outside
`#[cfg(test)]` code. Prints each cycle and exits 1 if there is one.
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
# (folder, the path its modules are named by from elsewhere in the crate)
AREAS = [
    (f"host/src/{a}", f"crate::{a}")
    for a in ["api", "local", "simulator"]
]
AREAS += [(f"engine/src/{s}", f"crate::{s}") for s in ["deployments", "apps", "insights", "catalog"]]
AREAS += [("cli/src", "crate"), ("store/src", "crate"), ("model/src", "crate"), ("router/src", "crate"), ("runtime/src", "crate"), ("plugin-host/src", "crate"), ("engine/src", "crate")]


def modules(area):
    base = os.path.join(ROOT, area)
    found = {}
    for root, _, files in os.walk(base):
        for f in files:
            if f.endswith(".rs"):
                path = os.path.join(root, f)
                top = os.path.relpath(path, base).split(os.sep)[0].removesuffix(".rs")
                if top not in ("mod", "lib"):
                    found.setdefault(top, []).append(path)
    return found


def code_of(path):
    """A source file's code as the compiler sees it outside its tests: comments, and a
    trailing `#[cfg(test)] mod tests { ... }`, left out (a `#[cfg(test)] mod tests;`
    line, which declares a file of its own, ends nothing)."""
    with open(path) as f:
        src = f.read()
    src = re.split(r"#\[cfg\(test\)\]\s*mod \w+\s*\{", src)[0]
    return re.sub(r"//[^\n]*", "", src)


def graph(prefix, mods):
    edges = {m: set() for m in mods}
    for m, paths in mods.items():
        for path in paths:
            src = code_of(path)
            for n in mods:
                if n == m:
                    continue
                named = rf"(super|{prefix})::(super::)?{n}::"
                listed = rf"use (super|{prefix})::\{{[^;]*\b{n}\b"
                if re.search(named, src) or re.search(listed, src):
                    edges[m].add(n)
    return edges


def cycles(edges):
    found = set()

    def walk(start, node, path):
        for nxt in edges[node]:
            if nxt == start:
                found.add(" -> ".join(path + [start]))
            elif nxt not in path:
                walk(start, nxt, path + [nxt])

    for m in sorted(edges):
        walk(m, m, [m])
    # One line per cycle, whichever module it starts from.
    unique = {}
    for c in found:
        key = frozenset(c.split(" -> "))
        unique.setdefault(key, c)
    return sorted(unique.values())


def main():
    bad = []
    for area, prefix in AREAS:
        mods = modules(area)
        if mods:
            bad += [f"{area}: {c}" for c in cycles(graph(prefix, mods))]
    for line in bad:
        print(line)
    if bad:
        print(f"{len(bad)} import cycle(s): move what both sides need into a module of its own")
        return 1
    print(f"ok: no import cycle between the modules of {', '.join(a for a, _ in AREAS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
