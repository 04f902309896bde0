"""Is the engine running? What an operator's monitor polls: the database, Redis, the age of the last
tick and the oldest message waiting past its time. Counts and ages only, never customer data.

Errors name what failed and how, never a connection string: the endpoint may be reachable without a
token, and a driver's message can carry host names and user names.
"""

import dataclasses
import datetime as dt
import logging

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, Min
from django.utils import timezone

from dunning_site.lib.heartbeat import TICK, heartbeat_last
from dunning_site.notifications.models import Message

logger = logging.getLogger(__name__)

# A monitor times out after a few seconds; a Redis that accepts and never answers must not hold the
# web worker longer than that.
REDIS_TIMEOUT_SECONDS = 2

DATABASE_DOWN = "The database does not answer (%(error)s)."
REDIS_DOWN = "Redis does not answer (%(error)s)."
TICK_NEVER = "No tick has finished since Redis was last emptied: is `rqcron dunning_site.jobs` running, and a worker?"
TICK_STALE = "The last tick finished %(age)s s ago; it runs every minute and the limit is %(limit)s s."
TICK_UNKNOWN = "Unknown: Redis does not answer."
MESSAGES_STUCK = (
    "%(due)s message(s) due and still queued, the oldest for %(age)s s (limit %(limit)s s): "
    "are the `messages` workers running?"
)
MESSAGES_UNKNOWN = "Unknown: the database does not answer."


@dataclasses.dataclass
class Check:
    ok: bool
    error: str = ""
    details: dict = dataclasses.field(default_factory=dict)

    def as_json(self) -> dict:
        return {"ok": self.ok, **({"error": self.error} if self.error else {}), **self.details}


def tick_limit_seconds() -> int:
    return settings.HEALTH_TICK_MAX_AGE_SECONDS


def queued_message_limit_seconds() -> int:
    """The sweeper re-enqueues a message DUNNING_SWEEP_AFTER_SECONDS after it was due, every five
    minutes; past that and a margin, nothing is delivering."""
    return settings.DUNNING_SWEEP_AFTER_SECONDS + settings.HEALTH_MESSAGE_MARGIN_SECONDS


def _redis() -> redis.Redis:
    url = settings.RQ_QUEUES["default"]["URL"]
    return redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS)


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        logger.warning("Health: the database does not answer: %s", error)
        return Check(ok=False, error=DATABASE_DOWN % {"error": type(error).__name__})
    return Check(ok=True)


def check_redis(client: redis.Redis) -> Check:
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        logger.warning("Health: Redis does not answer: %s", error)
        return Check(ok=False, error=REDIS_DOWN % {"error": type(error).__name__})
    return Check(ok=True)


def check_tick(client: redis.Redis, *, now: dt.datetime) -> Check:
    limit = tick_limit_seconds()
    try:
        finished_at = heartbeat_last(TICK, connection=client)
    except (redis.RedisError, OSError):
        return Check(ok=False, error=TICK_UNKNOWN, details={"limit_seconds": limit})
    if finished_at is None:
        return Check(ok=False, error=TICK_NEVER, details={"last_finished_at": None, "limit_seconds": limit})
    age = max(int((now - finished_at).total_seconds()), 0)
    details = {"last_finished_at": finished_at.isoformat(), "age_seconds": age, "limit_seconds": limit}
    if age > limit:
        return Check(ok=False, error=TICK_STALE % {"age": age, "limit": limit}, details=details)
    return Check(ok=True, details=details)


def check_queued_messages(*, now: dt.datetime) -> Check:
    limit = queued_message_limit_seconds()
    try:
        # Through the sweeper's partial index: only rows still queued.
        due = Message.objects.filter(status=Message.Status.QUEUED, send_after__lte=now).aggregate(
            count=Count("pk"), oldest=Min("send_after")
        )
    except DatabaseError:
        return Check(ok=False, error=MESSAGES_UNKNOWN, details={"limit_seconds": limit})
    age = int((now - due["oldest"]).total_seconds()) if due["oldest"] else 0
    details = {"due": due["count"], "oldest_wait_seconds": age, "limit_seconds": limit}
    if age > limit:
        return Check(
            ok=False, error=MESSAGES_STUCK % {"due": due["count"], "age": age, "limit": limit}, details=details
        )
    return Check(ok=True, details=details)


def health_report(*, now: dt.datetime | None = None) -> dict[str, Check]:
    now = now or timezone.now()
    client = _redis()
    try:
        return {
            "database": check_database(),
            "redis": check_redis(client),
            "tick": check_tick(client, now=now),
            "queued_messages": check_queued_messages(now=now),
        }
    finally:
        client.close()
