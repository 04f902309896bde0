"""The import-cycle ratchet (tools/import_cycles.py, run by `make lint`) on small import graphs of its
own: a new cycle fails with a loop to cut, a listed one must go when the code lets it go."""

import grimp
import pytest

from tools import import_cycles
from tools.import_cycles import GONE, GREW, NEW_CYCLE, SHRANK


def graph_of(*imports: str) -> grimp.ImportGraph:
    """Each line "a -> b" says that module a imports module b."""
    graph = grimp.ImportGraph()
    for line in imports:
        importer, imported = (name.strip() for name in line.split("->"))
        graph.add_import(importer=importer, imported=imported)
    return graph


def problems(graph: grimp.ImportGraph, *known: str) -> list[str]:
    return import_cycles.compare(
        current=import_cycles.cycles_in(graph),
        known={frozenset(line.split()) for line in known},
        graph=graph,
        known_name="known.txt",
    )


LOOP = graph_of("app.a -> app.b", "app.b -> app.c", "app.c -> app.a", "app.views -> app.a", "app.c -> lib.money")


def test_the_strongly_connected_modules_are_one_cycle():
    assert import_cycles.cycles_in(LOOP) == {frozenset({"app.a", "app.b", "app.c"})}
    assert import_cycles.cycles_in(graph_of("app.views -> app.a", "app.a -> lib.money")) == set()


def test_a_known_cycle_passes():
    assert problems(LOOP, "app.c app.a app.b") == []


def test_a_new_cycle_fails_and_shows_a_loop_to_cut():
    (problem,) = problems(LOOP)
    assert problem.startswith(NEW_CYCLE)
    assert "app.a -> app.b -> app.c -> app.a" in problem


def test_a_cycle_that_is_gone_must_leave_the_list():
    (problem,) = problems(graph_of("app.a -> app.b"), "app.a app.b app.c")
    assert problem.startswith(GONE.format(known="known.txt"))
    assert problem.endswith("app.a app.b app.c")


def test_a_cycle_that_shrank_must_be_replaced_in_the_list():
    (problem,) = problems(graph_of("app.a -> app.b", "app.b -> app.a", "app.b -> app.c"), "app.a app.b app.c")
    assert problem.startswith(SHRANK.format(known="known.txt"))
    assert problem.endswith("\n  app.a app.b")


def test_a_cycle_that_grew_fails_and_names_who_joined():
    grown = graph_of("app.a -> app.b", "app.b -> app.c", "app.c -> app.a", "app.c -> app.d", "app.d -> app.a")
    (problem,) = problems(grown, "app.a app.b app.c")
    assert problem.startswith(GREW) and "joined: app.d" in problem


def test_the_list_reads_one_cycle_a_line_and_skips_comments(tmp_path):
    known = tmp_path / "known.txt"
    known.write_text("# allowed today\n\napp.b app.a  # the core\napp.x app.y\n")
    assert import_cycles.read_known(known) == {frozenset({"app.a", "app.b"}), frozenset({"app.x", "app.y"})}


@pytest.mark.parametrize(("known", "status"), [("loopy.a loopy.b\n", 0), ("", 1)])
def test_the_command_exits_non_zero_on_any_problem(tmp_path, capsys, known, status):
    package = tmp_path / "loopy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from loopy import b\n")
    (package / "b.py").write_text("def later():\n    from loopy import a  # inside a function: still a loop\n")
    (tmp_path / "known.txt").write_text(known)
    argv = ["--root", str(tmp_path), "--package", "loopy", "--known", str(tmp_path / "known.txt")]
    assert import_cycles.main(argv) == status
    output = capsys.readouterr()
    assert (NEW_CYCLE in output.err) is bool(status)
    assert ("loopy.a -> loopy.b -> loopy.a" in output.err) is bool(status)
