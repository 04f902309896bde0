"""Fixtures shared by every app's tests: a real Redis (database 15, flushed), real RQ workers, and
`--clock`, which moves the whole test process's clock so that `make test` proves the suite does not
depend on the hour or the day it runs at.
"""

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import django_rq
import pytest
import time_machine
from rq import SimpleWorker

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
CLOCK_FORMAT = re.compile(r"^(?P<weekday>[a-z]+)-(?P<hour>\d{1,2}):(?P<minute>\d{2})$")
CLOCK_HELP = (
    "Run the whole session with the process clock moved: an ISO instant (2026-11-29T23:30:00+00:00) "
    "or a weekday and a UTC time (sunday-23:30), meaning the latest such moment before now. "
    "The clock ticks on from there; tests that travel with time-machine still go where they say."
)


def pytest_addoption(parser) -> None:
    parser.addoption("--clock", default="", help=CLOCK_HELP)


def clock_moment(value: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """The instant `--clock` names. A weekday form is resolved into the past, never the future: a
    process this test starts (a worker, a server) runs on the real clock, and must find due what the
    tests made due."""
    now = now or dt.datetime.now(dt.UTC)
    match = CLOCK_FORMAT.match(value.strip().lower())
    if match is None:
        moment = dt.datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise pytest.UsageError(f"--clock needs a time zone offset: {value!r}")
        return moment
    if match["weekday"] not in WEEKDAYS:
        raise pytest.UsageError(f"--clock: unknown weekday {match['weekday']!r}")
    wanted = WEEKDAYS.index(match["weekday"])
    moment = now.replace(hour=int(match["hour"]), minute=int(match["minute"]), second=0, microsecond=0)
    moment -= dt.timedelta(days=(moment.weekday() - wanted) % 7)
    return moment if moment <= now else moment - dt.timedelta(days=7)


def compile_translations(root: Path) -> None:
    """The .mo files are not committed: `make test` compiles them, and so does a bare `pytest` when one
    is missing or older than its .po file (each written whole, then moved into place)."""
    for po in sorted(root.glob("locale/*/LC_MESSAGES/django.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        if shutil.which("msgfmt") is None:
            raise pytest.UsageError(f"{mo} must be compiled and msgfmt is missing: `make test` installs gettext")
        partial = mo.with_suffix(f".mo.{os.getpid()}")
        subprocess.run(["msgfmt", "--check-format", "-o", str(partial), str(po)], check=True)
        os.replace(partial, mo)


def pytest_configure(config) -> None:
    compile_translations(Path(__file__).resolve().parent)
    value = config.getoption("--clock")
    if not value:
        return
    moment = clock_moment(value)
    # Started before any test and left running to the end; time-machine's own travels nest inside it.
    traveller = time_machine.travel(moment, tick=True)
    traveller.start()
    config.stash[_CLOCK] = (moment, traveller)


def pytest_unconfigure(config) -> None:
    moved = config.stash.get(_CLOCK, None)
    if moved:
        moved[1].stop()


def pytest_report_header(config) -> str:
    moved = config.stash.get(_CLOCK, None)
    if not moved:
        return "clock: the machine's own"
    return f"clock: moved to {moved[0]:%A %Y-%m-%d %H:%M} UTC (--clock={config.getoption('--clock')})"


_CLOCK = pytest.StashKey[tuple]()


def manage_command(*args: str) -> list[str]:
    """The argv of a `manage.py` command for a test to run as a process of its own, on the test's
    clock: under `--clock` (or inside a test's time travel) the child starts at the test's "now"
    and ticks on, so the two processes agree on what is due."""
    from django.utils import timezone

    start = str(timezone.now().timestamp())
    bootstrap = (
        "import sys, time_machine; time_machine.travel(float(sys.argv[1]), tick=True).start(); "
        "from django.core.management import execute_from_command_line; "
        "execute_from_command_line(['manage.py', *sys.argv[2:]])"
    )
    return [sys.executable, "-c", bootstrap, start, *args]


@pytest.fixture(autouse=True)
def _anymail_test_backend(settings):
    # Django's test set-up swaps in locmem; the product sends through Anymail, so tests do too.
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"


@pytest.fixture(autouse=True)
def redis_connection():
    connection = django_rq.get_connection("default")
    connection.flushdb()
    yield connection
    connection.flushdb()


@pytest.fixture
def run_jobs(django_capture_on_commit_callbacks):
    """Run every queued job now in this process (SimpleWorker: no fork, so it sees the test's rows),
    after moving the scheduled jobs that are due (deferred deliveries, retries) onto their queues."""

    def run() -> None:
        # Jobs run inside the test's transaction, so what they enqueue "on commit" (a deferred
        # delivery, a retry) is captured and enqueued when the batch ends, as a real commit would;
        # jobs enqueued that way run in the next round.
        for _ in range(10):
            with django_capture_on_commit_callbacks(execute=True):
                worker = django_rq.get_worker("default", "messages", worker_class=SimpleWorker)
                worker.work(burst=True, with_scheduler=True)
            if not any(django_rq.get_queue(name).count for name in ("default", "messages")):
                return

    return run
