"""Fail on any import cycle among the project's modules.

import-linter's layers contracts (pyproject.toml) keep the walls between apps and between the rooms
of collections; this keeps every other pair of modules honest: modules that import each other in a
loop, directly or through others, cannot be read or changed one at a time. A cycle fails with one
concrete loop to cut.

Imports inside functions count (they are how a loop hides), as do TYPE_CHECKING ones (a reader still
has to follow them).
"""

import argparse
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "dunning_site"

CYCLE = "Import cycle"

Cycle = frozenset[str]


def build_graph(*, root: Path = ROOT, package: str = PACKAGE) -> grimp.ImportGraph:
    sys.path.insert(0, str(root))  # the working tree's package, whatever else is installed
    try:
        return grimp.build_graph(package, cache_dir=None)  # a second or less: no cache to go stale
    finally:
        sys.path.remove(str(root))


def cycles_in(graph: grimp.ImportGraph) -> set[Cycle]:
    """The strongly connected components with more than one module: a module is in one with every
    module that it reaches through its imports and that reaches it back."""
    found: set[Cycle] = set()
    placed: set[str] = set()
    for module in sorted(graph.modules):
        if module in placed:
            continue
        loop = graph.find_upstream_modules(module) & graph.find_downstream_modules(module)
        if loop:
            component = frozenset(loop | {module})
            found.add(component)
            placed |= component
    return found


def example_loop(graph: grimp.ImportGraph, cycle: Cycle) -> list[str]:
    """One concrete loop through the cycle's first module, to show where to cut."""
    start = min(cycle)
    for imported in sorted(graph.find_modules_directly_imported_by(start) & cycle):
        chain = graph.find_shortest_chain(importer=imported, imported=start)
        if chain:
            return [start, *chain]
    return [start]


def problems_in(graph: grimp.ImportGraph) -> list[str]:
    """One paragraph per cycle; none when the graph has no cycle."""
    return [
        f"{CYCLE} among {len(cycle)} modules ({', '.join(sorted(cycle))}).\n"
        f"  For example: {' -> '.join(example_loop(graph, cycle))}\n"
        "  Cut it: move what both sides need below them, or let the lower module define an interface\n"
        "  (a Django signal, as collections.signals and notifications.signals do)."
        for cycle in sorted(cycles_in(graph), key=sorted)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the directory holding the package")
    parser.add_argument("--package", default=PACKAGE, help="the package whose modules are checked")
    args = parser.parse_args(argv)
    graph = build_graph(root=args.root, package=args.package)
    problems = problems_in(graph)
    for problem in problems:
        print(problem, end="\n\n", file=sys.stderr)
    if problems:
        print(f"Import cycles: {len(problems)} found.", file=sys.stderr)
        return 1
    print(f"Import cycles: none ({len(graph.modules)} modules).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
