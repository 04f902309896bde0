"""The import-cycle check (tools/import_cycles.py, run by `make lint`) on small import graphs of its
own: any cycle fails, with a loop to cut; a graph without one passes."""

import grimp
import pytest

from tools import import_cycles
from tools.import_cycles import CYCLE


def graph_of(*imports: str) -> grimp.ImportGraph:
    """Each line "a -> b" says that module a imports module b."""
    graph = grimp.ImportGraph()
    for line in imports:
        importer, imported = (name.strip() for name in line.split("->"))
        graph.add_import(importer=importer, imported=imported)
    return graph


LOOP = graph_of("app.a -> app.b", "app.b -> app.c", "app.c -> app.a", "app.views -> app.a", "app.c -> lib.money")


def test_the_strongly_connected_modules_are_one_cycle():
    assert import_cycles.cycles_in(LOOP) == {frozenset({"app.a", "app.b", "app.c"})}
    assert import_cycles.cycles_in(graph_of("app.views -> app.a", "app.a -> lib.money")) == set()


def test_a_cycle_fails_and_shows_a_loop_to_cut():
    (problem,) = import_cycles.problems_in(LOOP)
    assert problem.startswith(f"{CYCLE} among 3 modules (app.a, app.b, app.c)")
    assert "app.a -> app.b -> app.c -> app.a" in problem


def test_two_separate_cycles_are_two_problems():
    graph = graph_of("app.a -> app.b", "app.b -> app.a", "other.x -> other.y", "other.y -> other.x")
    assert len(import_cycles.problems_in(graph)) == 2


def test_a_graph_without_cycles_has_no_problem():
    assert import_cycles.problems_in(graph_of("app.views -> app.a", "app.a -> app.b", "app.views -> app.b")) == []


@pytest.mark.parametrize(("loops", "status"), [(False, 0), (True, 1)])
def test_the_command_exits_non_zero_on_a_cycle(tmp_path, capsys, loops, status):
    package = tmp_path / "loopy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from loopy import b\n")
    later = "def later():\n    from loopy import a  # inside a function: still a loop\n" if loops else "X = 1\n"
    (package / "b.py").write_text(later)
    assert import_cycles.main(["--root", str(tmp_path), "--package", "loopy"]) == status
    output = capsys.readouterr()
    assert (CYCLE in output.err) is bool(status)
    assert ("loopy.a -> loopy.b -> loopy.a" in output.err) is bool(status)
