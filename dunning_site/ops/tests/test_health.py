"""/health/ for an operator's monitor: 200 when the engine runs, 503 naming what is wrong. The clock
is moved with time-machine; Redis and the database are made unreachable for real (a closed port)."""

import datetime as dt
import json
import os
import socket

import pytest
import time_machine

from dunning_site.accounts.models import Channel
from dunning_site.accounts.tests.factories import CustomerFactory
from dunning_site.collections import jobs
from dunning_site.notifications.models import Message
from dunning_site.ops import health, views
from dunning_site.tests.test_settings import PRODUCTION, manage

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 29, 23, 30, tzinfo=dt.UTC)  # a Sunday night: the monitor never sleeps
SWEEP_AFTER, MARGIN, TICK_LIMIT = 300, 600, 300


@pytest.fixture(autouse=True)
def limits(settings):
    settings.DUNNING_SWEEP_AFTER_SECONDS = SWEEP_AFTER
    settings.HEALTH_MESSAGE_MARGIN_SECONDS = MARGIN
    settings.HEALTH_TICK_MAX_AGE_SECONDS = TICK_LIMIT
    settings.HEALTH_CHECK_TOKEN = ""


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def ticked(clock):
    """The cron's tick job ran at NOW (an empty book: it has nothing to do but finish)."""
    jobs.tick()
    return clock


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def queued_message(*, due: dt.datetime, customer=None) -> Message:
    customer = customer or CustomerFactory(name="Ada Lovelace", email="ada@customer.example")
    return Message.objects.create(
        customer=customer,
        channel=Channel.EMAIL,
        to_address=customer.email,
        subject="Your invoice INV-7 is overdue",
        body="Dear Ada Lovelace, …",
        idempotency_key=f"health-test:{due.isoformat()}",
        send_after=due,
    )


def get_health(client, **headers) -> tuple[int, dict]:
    response = client.get("/health/", headers=headers)
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response.status_code, response.json()


def test_a_running_engine_is_healthy(client, ticked):
    ticked.shift(dt.timedelta(seconds=40))
    status, body = get_health(client)
    assert status == 200
    assert (body["status"], body["failing"]) == ("ok", [])
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["redis"] == {"ok": True}
    assert body["checks"]["tick"] == {
        "ok": True,
        "last_finished_at": NOW.isoformat(),
        "age_seconds": 40,
        "limit_seconds": TICK_LIMIT,
    }
    assert body["checks"]["queued_messages"] == {
        "ok": True,
        "due": 0,
        "oldest_wait_seconds": 0,
        "limit_seconds": SWEEP_AFTER + MARGIN,
    }


def test_a_tick_older_than_the_limit_is_named(client, ticked):
    ticked.shift(dt.timedelta(seconds=TICK_LIMIT))
    assert get_health(client)[0] == 200
    ticked.shift(dt.timedelta(seconds=1))
    assert client.head("/health/").status_code == 503  # for monitors that only look at the status
    status, body = get_health(client)
    assert status == 503
    assert (body["status"], body["failing"]) == ("failing", ["tick"])
    assert body["checks"]["tick"]["age_seconds"] == TICK_LIMIT + 1
    assert body["checks"]["tick"]["error"] == health.TICK_STALE % {"age": TICK_LIMIT + 1, "limit": TICK_LIMIT}


def test_before_any_tick_the_engine_is_not_healthy(client, clock):
    status, body = get_health(client)
    assert status == 503
    assert body["failing"] == ["tick"]
    assert body["checks"]["tick"] == {
        "ok": False,
        "error": health.TICK_NEVER,
        "last_finished_at": None,
        "limit_seconds": TICK_LIMIT,
    }


def test_a_message_stuck_queued_past_the_sweepers_window_is_named_without_customer_data(client, ticked):
    customer = CustomerFactory(name="Ada Lovelace", email="ada@customer.example", company="Analytical Engines Ltd")
    queued_message(due=NOW - dt.timedelta(minutes=2), customer=customer)  # a worker will take it any moment
    queued_message(due=NOW + dt.timedelta(hours=9), customer=customer)  # held by the contact rules: not due
    assert get_health(client)[0] == 200

    stuck = queued_message(due=NOW - dt.timedelta(seconds=SWEEP_AFTER + MARGIN + 1), customer=customer)
    response = client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["queued_messages"]
    assert body["checks"]["queued_messages"]["due"] == 2
    assert body["checks"]["queued_messages"]["oldest_wait_seconds"] == SWEEP_AFTER + MARGIN + 1
    content = response.content.decode()
    for private in (customer.name, customer.email, customer.company, stuck.subject, stuck.tracking_token):
        assert private not in content

    Message.objects.filter(pk=stuck.pk).update(status=Message.Status.SENT)  # a worker came back
    assert get_health(client)[0] == 200


def test_redis_down_is_named(client, ticked, settings):
    settings.RQ_QUEUES = {
        name: {**queue, "URL": f"redis://127.0.0.1:{closed_port()}/0"} for name, queue in settings.RQ_QUEUES.items()
    }
    status, body = get_health(client)
    assert status == 503
    assert body["failing"] == ["redis", "tick"]
    assert body["checks"]["redis"] == {"ok": False, "error": health.REDIS_DOWN % {"error": "ConnectionError"}}
    assert body["checks"]["tick"]["error"] == health.TICK_UNKNOWN
    assert body["checks"]["database"] == {"ok": True}


def test_the_database_down_is_named():
    """A real process whose DATABASE_URL points at a closed port, asked through Django's test client."""
    asking = (
        "from django.test import Client; "
        "response = Client().get('/health/', secure=True, HTTP_HOST='dunning.example.com'); "
        "print(response.status_code); print(response.content.decode())"
    )
    env = PRODUCTION | {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed_port()}/dunning",
        "REDIS_URL": os.environ["REDIS_URL"],
    }
    result = manage("shell", "--no-imports", "-c", asking, **env)
    assert result.returncode == 0, result.stderr
    status, content = result.stdout.strip().split("\n", 1)
    body = json.loads(content)
    assert status == "503"
    assert {"database", "queued_messages"} <= set(body["failing"])
    assert body["checks"]["database"] == {"ok": False, "error": health.DATABASE_DOWN % {"error": "OperationalError"}}
    assert body["checks"]["queued_messages"]["error"] == health.MESSAGES_UNKNOWN
    assert "127.0.0.1" not in content and "postgres" not in content


def test_with_a_token_only_a_monitor_that_sends_it_is_answered(client, ticked, settings):
    settings.HEALTH_CHECK_TOKEN = "h3alth-0123456789abcdef"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "h3alth-0123456789abcdef"}):
        response = client.get("/health/", headers=headers)
        assert response.status_code == 403
        assert response.json() == {"error": views.TOKEN_REQUIRED}
    assert client.get("/health/?token=h3alth-0123456789abcdef").status_code == 403  # query strings end up in logs
    status, body = get_health(client, Authorization="Bearer h3alth-0123456789abcdef")
    assert (status, body["status"]) == (200, "ok")


def test_a_monitor_on_the_same_host_may_ask_over_plain_http(client, ticked, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/health/").status_code == 200
    assert client.get("/accounts/login/").status_code == 301
