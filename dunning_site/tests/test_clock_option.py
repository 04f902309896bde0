"""`pytest --clock`, which `make test` uses to run the suite on a Sunday night and a Monday morning."""

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import clock_moment

ROOT = Path(__file__).resolve().parents[2]
MONDAY_MORNING = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)


def test_a_weekday_means_the_latest_such_moment_before_now():
    assert clock_moment("sunday-23:30", now=MONDAY_MORNING) == dt.datetime(2026, 11, 29, 23, 30, tzinfo=dt.UTC)
    assert clock_moment("monday-10:00", now=MONDAY_MORNING) == MONDAY_MORNING
    # A minute earlier, this Monday's 10:00 is still to come: last week's.
    earlier = MONDAY_MORNING - dt.timedelta(minutes=1)
    assert clock_moment("monday-10:00", now=earlier) == dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def test_an_iso_instant_is_taken_as_it_is_and_needs_its_offset():
    assert clock_moment("2026-11-29T23:30:00+01:00") == dt.datetime(2026, 11, 29, 22, 30, tzinfo=dt.UTC)
    with pytest.raises(pytest.UsageError):
        clock_moment("2026-11-29T23:30:00")
    with pytest.raises(pytest.UsageError):
        clock_moment("someday-10:00")


PROBE = """
import datetime as dt


def test_print_the_time():
    print(f"now:{dt.datetime.now(dt.UTC).isoformat()}")
"""


def test_the_session_runs_on_the_moved_clock(tmp_path):
    """A real pytest process: its header says where its clock is, and a test inside it reads that time."""
    (tmp_path / "test_probe.py").write_text(PROBE)
    command = [sys.executable, "-m", "pytest", "-p", "conftest", "-c", str(ROOT / "pyproject.toml")]
    command += ["--rootdir", str(ROOT), "--clock=sunday-23:30", "-s", str(tmp_path / "test_probe.py")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "clock: moved to Sunday" in result.stdout
    (line,) = [line for line in result.stdout.splitlines() if "now:" in line]
    now = dt.datetime.fromisoformat(line.split("now:")[1].split()[0])
    assert (now.strftime("%A"), now.hour, now.minute) == ("Sunday", 23, 30)
