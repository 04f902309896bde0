"""When periodic work last finished, kept in Redis for the health endpoint to read.

A key per kind of work, holding an ISO 8601 instant and no expiry: the health check decides what is
too old. Redis, not the database, because the work that beats is RQ's and cannot run without Redis;
after Redis is emptied the health check reports "never" until the next beat, a minute later.
"""

import datetime as dt

from redis import Redis

TICK = "tick"


def _key(name: str) -> str:
    return f"dunning:heartbeat:{name}"


def heartbeat_record(name: str, *, at: dt.datetime, connection: Redis) -> None:
    connection.set(_key(name), at.isoformat())


def heartbeat_last(name: str, *, connection: Redis) -> dt.datetime | None:
    value = connection.get(_key(name))
    return dt.datetime.fromisoformat(value.decode() if isinstance(value, bytes) else value) if value else None
