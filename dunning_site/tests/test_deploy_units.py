"""The supervisor units in deploy/systemd/ and the Procfile: every process they start is a command
that exists here, each is restarted whatever way it stopped (a worker exits when Redis goes away),
and the web unit's command really serves the site."""

import configparser
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib.util import find_spec
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import get_commands

BASE_DIR = Path(__file__).resolve().parents[2]
UNITS = BASE_DIR / "deploy" / "systemd"
INSTALLED_AT = "/srv/dunning"
SERVICES = ["dunning-web.service", "dunning-worker@.service", "dunning-cron.service"]


def unit(name: str) -> configparser.ConfigParser:
    # systemd allows a key more than once and has no interpolation; its keys are case-sensitive.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string((UNITS / name).read_text())
    return parser


def exec_start(name: str) -> list[str]:
    """The unit's command, with the worker's queues as its default environment sets them."""
    service = unit(name)["Service"]
    command = service["ExecStart"]
    for assignment in shlex.split(service.get("Environment", "")):
        variable, _, value = assignment.partition("=")
        command = command.replace(f"${variable}", value)
    return shlex.split(command)


def here(program: str) -> str:
    """Where a program of the deployment's virtualenv is in this one."""
    assert program.startswith(f"{INSTALLED_AT}/.venv/bin/"), program
    return str(Path(sys.executable).parent / Path(program).name)


def procfile() -> dict[str, list[str]]:
    entries = {}
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = shlex.split(command)
    return entries


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_is_restarted_whatever_way_it_stopped(name):
    parsed = unit(name)
    service = parsed["Service"]
    # "always", not "on-failure": a worker that stops cleanly (told to by a deploy gone wrong) is restarted too.
    assert service["Restart"] == "always"
    assert float(service["RestartSec"]) > 0
    # Never give up: Redis or the database may be away for longer than systemd's default burst allows.
    assert parsed["Unit"]["StartLimitIntervalSec"] == "0"
    assert service["EnvironmentFile"] == "/etc/dunning/dunning.env"
    assert service["WorkingDirectory"] == INSTALLED_AT
    assert service["User"] == service["Group"] == "dunning"
    hardening = {"NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectSystem": "strict", "ProtectHome": "yes"}
    assert {key: service.get(key) for key in hardening} == hardening
    assert service["ReadWritePaths"] == f"{INSTALLED_AT}/var"  # letters are written under MEDIA_ROOT
    assert parsed["Install"]["WantedBy"] == "dunning.target"
    assert parsed["Unit"]["PartOf"] == "dunning.target"


def test_the_web_unit_runs_gunicorn_on_the_projects_wsgi_application():
    program, application, *options = exec_start("dunning-web.service")
    assert Path(here(program)).is_file() and Path(program).name == "gunicorn"
    assert application == "dunning_site.wsgi" and find_spec(application) is not None
    assert options[options.index("--bind") + 1] == "127.0.0.1:8000"


def test_the_worker_unit_runs_rq_workers_on_the_projects_queues_with_the_scheduler():
    program, manage, command, *arguments = exec_start("dunning-worker@.service")
    assert (Path(program).name, manage, command) == ("python", "manage.py", "rqworker")
    assert (BASE_DIR / manage).is_file() and command in get_commands()
    queues = [argument for argument in arguments if not argument.startswith("--")]
    assert queues == ["default", "messages"] and set(queues) == set(settings.RQ_QUEUES)
    assert "--with-scheduler" in arguments


def test_the_cron_unit_runs_rqs_cron_on_the_projects_jobs():
    program, manage, command, module = exec_start("dunning-cron.service")
    assert (Path(program).name, manage, command) == ("python", "manage.py", "rqcron")
    assert command in get_commands() and find_spec(module) is not None and module == "dunning_site.jobs"


def test_the_target_starts_the_web_the_cron_and_two_workers():
    wanted = unit("dunning.target")["Unit"]["Wants"].split()
    assert wanted == [
        "dunning-web.service",
        "dunning-cron.service",
        "dunning-worker@1.service",
        "dunning-worker@2.service",
    ]


def test_the_procfile_names_the_same_processes():
    entries = procfile()
    assert set(entries) == {"release", "web", "worker", "cron"}
    # A fresh deployment duns: the release step creates the Default policy after migrating (idempotent).
    assert entries["release"] == [
        "python",
        "manage.py",
        "migrate",
        "--noinput",
        "&&",
        *["python", "manage.py", "dunning_setup"],
    ]
    assert entries["web"][:2] == ["gunicorn", "dunning_site.wsgi"]
    assert entries["worker"][1:] == exec_start("dunning-worker@.service")[1:]
    assert entries["cron"][1:] == exec_start("dunning-cron.service")[1:]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_web_units_command_serves_the_health_endpoint(tmp_path):
    """The unit's own command line, only the paths and the port changed: a real gunicorn answering."""
    program, application, *options = exec_start("dunning-web.service")
    port = free_port()
    options[options.index("--bind") + 1] = f"127.0.0.1:{port}"
    options[options.index("--workers") + 1] = "1"
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen([here(program), application, *options], cwd=BASE_DIR, stdout=log, stderr=log)
    try:
        deadline, answer = time.monotonic() + 30, None
        while answer is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=5) as response:
                    answer = response.status, response.read()
            except urllib.error.HTTPError as error:  # 503: served, but something is missing here
                answer = error.code, error.read()
            except OSError:
                time.sleep(0.2)
        assert answer is not None, (tmp_path / "gunicorn.log").read_text()
        status, body = answer
        assert status in (200, 503)
        assert b'"checks"' in body and b'"database"' in body
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path):
    """`systemd-analyze verify` on the units, moved to this checkout (it checks that programs exist)."""
    for source in UNITS.iterdir():
        text = source.read_text().replace(f"{INSTALLED_AT}/.venv/bin/", f"{Path(sys.executable).parent}/")
        text = text.replace(INSTALLED_AT, str(BASE_DIR)).replace("EnvironmentFile=", "EnvironmentFile=-")
        (tmp_path / source.name).write_text(text)
    (tmp_path / "dunning-worker@1.service").write_text((tmp_path / "dunning-worker@.service").read_text())
    (tmp_path / "dunning-worker@2.service").write_text((tmp_path / "dunning-worker@.service").read_text())
    names = ["dunning-web.service", "dunning-cron.service", "dunning-worker@1.service", "dunning.target"]
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *[str(tmp_path / name) for name in names]],
        capture_output=True,
        text=True,
        env=os.environ | {"SYSTEMD_LOG_LEVEL": "notice"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""
