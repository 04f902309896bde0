"""`python -m bench.simulate --customers N --seed S` (make simulate): see bench/simulate/__init__.py.

Runs in its own PostgreSQL database, `<DATABASE_URL's name>_sim` (created and migrated, then emptied
before each run), and empties the Redis database REDIS_URL names. The last line printed is one JSON object.
"""

import argparse
import json
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dunning_site.settings")
os.environ["DATABASE_URL"] = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dunning") + "_sim"
# Not DEBUG: Django would keep every query of a run of hours in memory.
os.environ.setdefault("SECRET_KEY", "simulator-only-key-0123456789abcdefghijklmnopqrstuvwxyz-0123456789")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--step-minutes", type=int, default=15)
    arguments = parser.parse_args()

    import django

    django.setup()
    logging.disable(logging.INFO)  # the worker and stripe-python narrate every job and request
    import django_rq
    from django.core.management import call_command
    from django.db import connection, connections

    from bench.simulate import simulate

    name = connection.settings_dict["NAME"]
    with connections["default"]._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if not cursor.fetchone():
            cursor.execute(f'CREATE DATABASE "{name}"')
    call_command("migrate", verbosity=0)
    call_command("flush", "--noinput", verbosity=0)
    django_rq.get_connection("default").flushdb()
    result = simulate(
        customers=arguments.customers,
        seed=arguments.seed,
        days=arguments.days,
        step_minutes=arguments.step_minutes,
        progress=True,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
