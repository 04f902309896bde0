"""The walls `make lint` keeps (import-linter's contracts in pyproject.toml), tried on a copy of the
project: as it is they hold; a back-import, or a contract that no longer allows a direction the code
uses, breaks them. So the contracts are known to fail when they should, not only to pass."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
APPS = "Apps are layers"
ROOMS = "Rooms of collections"


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the package and of pyproject.toml, to break."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copytree(ROOT / "dunning_site", copy / "dunning_site", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def lint_imports(project: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=project, capture_output=True, text=True, timeout=120, check=False
    )


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_the_project_keeps_both_contracts(project):
    result = lint_imports(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{APPS}" in result.stdout and f"{ROOMS}" in result.stdout and "2 kept, 0 broken" in result.stdout


def test_the_case_core_importing_the_retry_planner_breaks_the_rooms(project):
    append(
        project / "dunning_site/collections/case_core.py", "\nfrom dunning_site.collections import payment_retries\n"
    )
    result = lint_imports(project)
    assert result.returncode == 1
    assert "1 kept, 1 broken" in result.stdout
    assert "dunning_site.collections.case_core -> dunning_site.collections.payment_retries" in result.stdout


def test_notifications_importing_collections_breaks_the_apps_layers(project):
    append(project / "dunning_site/notifications/services.py", "\nfrom dunning_site.collections import models\n")
    result = lint_imports(project)
    assert result.returncode == 1
    assert "1 kept, 1 broken" in result.stdout
    assert "dunning_site.notifications.services -> dunning_site.collections.models" in result.stdout


def test_collections_importing_the_portal_breaks_the_apps_layers(project):
    append(project / "dunning_site/collections/context.py", "\nfrom dunning_site.portal import urls\n")
    result = lint_imports(project)
    assert result.returncode == 1
    assert "dunning_site.collections.context -> dunning_site.portal.urls" in result.stdout


def test_a_contract_that_no_longer_allows_a_direction_the_code_uses_breaks(project):
    """Put the ladder below the case core in the contract: the ladder's imports of the core now go upwards."""
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert '    "ladder",\n    "case_core",\n' in text
    pyproject.write_text(text.replace('    "ladder",\n    "case_core",\n', '    "case_core",\n    "ladder",\n'))
    result = lint_imports(project)
    assert result.returncode == 1
    assert "dunning_site.collections.ladder -> dunning_site.collections.case_core" in result.stdout


def test_a_module_placed_nowhere_breaks_the_rooms(project):
    (project / "dunning_site/collections/stray.py").write_text("X = 1\n")
    result = lint_imports(project)
    assert result.returncode == 1
    assert "dunning_site.collections.stray" in result.stdout
