#!/usr/bin/env python3
"""The host's areas import only the areas below them.

The crates hold the direction between the model, the store, the ports, the router, the
runtime, the health probes, the plugins, the engine, the CLI and the host: cargo refuses a dependency the manifests do not declare. Inside the host, the areas (the
top-level modules of `host/src`) keep the same rule, and this checks it: each area has a
rank, and an area may name (`crate::<area>`) only areas of a lower rank. Data flows
down: the commands this process runs, the API, the engine and its services, the
plugins, and the parts that do the work (runtime, router, health), over the store.

Prints each import that goes up or sideways, and exits 1 if there is one.
"""

import importlib.util
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "..", "host", "src")

# Each area and its rank: an area may import only areas of a lower rank.
RANKS = {
    "local": 10,  # serve, router, store migrate, plugin test: this process's commands
    "server": 9,  # wires everything together
    "api": 8,
    "cluster": 7,  # the leader lease, which the API and the server consult
    "simulator": 6,  # plugin test: the engine's machine over a simulated world
    # The crates below are re-exported by the host as `crate::<name>`.
    "engine": 5,  # hivemind-engine, with the three below
    "services": 4,  # the handles engine and plugins share; the plugins' Platform
    "acme": 3,
    "series": 2,  # the dashboard's figures, from the router's counts
    "plugins": 3,  # hivemind-plugins
    "runtime": 1,  # hivemind-runtime
    "router": 1,  # hivemind-router
    "health": 1,  # hivemind-health
    "ports": 0,  # hivemind-ports
}


def load_cycles_check():
    """The cycle check's module, for its `code_of` (comments and test blocks left out)."""
    spec = importlib.util.spec_from_file_location("cycles", os.path.join(HERE, "check-module-cycles.py"))
    cycles = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cycles)
    return cycles


code_of = load_cycles_check().code_of


def files_of(area):
    path = os.path.join(SRC, area)
    if os.path.isfile(path + ".rs"):
        return [path + ".rs"]
    found = []
    for root, _, files in os.walk(path):
        found += [os.path.join(root, f) for f in files if f.endswith(".rs")]
    return found


def main():
    areas = sorted(
        e.removesuffix(".rs") for e in os.listdir(SRC) if e.removesuffix(".rs") not in ("lib", "main")
    )
    unranked = [a for a in areas if a not in RANKS]
    if unranked:
        print(f"areas without a rank: {', '.join(unranked)}; give each one in RANKS ({__file__})")
        return 1
    bad = []
    for area in areas:
        for path in files_of(area):
            for used in sorted(set(re.findall(r"crate::([a-z_]+)", code_of(path)))):
                if used != area and used in RANKS and RANKS[used] >= RANKS[area]:
                    where = os.path.relpath(path, os.path.join(SRC, "..", ".."))
                    bad.append(f"{where}: `{area}` (rank {RANKS[area]}) uses `{used}` (rank {RANKS[used]})")
    for line in bad:
        print(line)
    if bad:
        print(f"{len(bad)} import(s) against the flow: move what both need below both")
        return 1
    print(f"ok: {len(areas)} areas, each importing only areas below it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
