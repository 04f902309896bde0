"""Fail on any import cycle among the project's modules that is not in tools/known_import_cycles.txt.

import-linter's layers contract keeps the walls between apps; inside an app, modules that import each
other in a loop cannot be read or changed one at a time. This check is a ratchet: the cycles that exist
today are listed (one per line, the modules of one strongly connected component of the import graph),
a new one fails, and so does a listed one that is gone or smaller — the list must shrink with the code,
or it would go on allowing a loop nobody has any more.

Imports inside functions count (they are how a loop hides), as do TYPE_CHECKING ones (a reader still
has to follow them). `python tools/import_cycles.py --current` prints today's cycles in the file's format.
"""

import argparse
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "dunning_site"
KNOWN = ROOT / "tools" / "known_import_cycles.txt"

NEW_CYCLE = "New import cycle"
GREW = "A known import cycle grew"
SHRANK = "A known import cycle shrank: replace its line in {known} with the one below"
GONE = "A known import cycle is gone: remove its line from {known}"

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


def line_of(cycle: Cycle) -> str:
    return " ".join(sorted(cycle))


def read_known(path: Path) -> set[Cycle]:
    known: set[Cycle] = set()
    for raw in path.read_text().splitlines() if path.exists() else []:
        line = raw.split("#", 1)[0].strip()
        if line:
            known.add(frozenset(line.split()))
    return known


def compare(*, current: set[Cycle], known: set[Cycle], graph: grimp.ImportGraph, known_name: str) -> list[str]:
    """The problems, each a paragraph; none when the list matches the code exactly."""
    problems = []
    explained: set[Cycle] = set()
    for cycle in sorted(current - known, key=line_of):
        larger = next((old for old in known if cycle < old), None)
        smaller = [old for old in known if old < cycle]
        if larger is not None:
            explained.add(larger)
            problems.append(f"{SHRANK.format(known=known_name)}:\n  {line_of(cycle)}")
            continue
        explained.update(smaller)
        title = GREW if smaller else NEW_CYCLE
        joined = cycle - frozenset().union(*smaller) if smaller else cycle
        loop = " -> ".join(example_loop(graph, cycle))
        problems.append(
            f"{title} among {len(cycle)} modules ({'joined: ' if smaller else ''}{', '.join(sorted(joined))}).\n"
            f"  For example: {loop}\n"
            "  Cut it: move what both sides need below them, or let the lower module define an interface."
        )
    for cycle in sorted(known - current - explained, key=line_of):
        problems.append(f"{GONE.format(known=known_name)}:\n  {line_of(cycle)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--known", type=Path, default=KNOWN, help="the list of allowed cycles")
    parser.add_argument("--root", type=Path, default=ROOT, help="the directory holding the package")
    parser.add_argument("--package", default=PACKAGE, help="the package whose modules are checked")
    parser.add_argument("--current", action="store_true", help="print today's cycles, one a line, and exit")
    args = parser.parse_args(argv)
    graph = build_graph(root=args.root, package=args.package)
    current = cycles_in(graph)
    if args.current:
        print("\n".join(sorted(line_of(cycle) for cycle in current)))
        return 0
    known_name = args.known.relative_to(ROOT) if args.known.is_relative_to(ROOT) else args.known
    problems = compare(current=current, known=read_known(args.known), graph=graph, known_name=str(known_name))
    for problem in problems:
        print(problem, end="\n\n", file=sys.stderr)
    if problems:
        print(f"Import cycles: {len(problems)} problem(s).", file=sys.stderr)
        return 1
    print(f"Import cycles: {len(current)} known, none new ({len(graph.modules)} modules).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
