"""The SMS channel: a transport over pluggable backends, and the arithmetic of SMS segments.

Backends are chosen by `settings.SMS_BACKEND`, a dotted path, as Django chooses its email backend:
Twilio in production, the console in development, an in-memory outbox in tests.

Exactly-once: Twilio's Messages API takes no idempotency key, so a repeated request sends a second
SMS. What keeps a message from going out twice is the claim in `message_deliver` (queued → sending,
by conditional update), with the provider id recorded right after the send. The key is still handed
to every backend so that one with an idempotency key can use it, and so that the outbox shows it.
"""

import itertools
import logging
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.module_loading import import_string
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from dunning_site.notifications.models import Message
from dunning_site.notifications.transports import NO_ADDRESS, Transport, TransportError, handed_over

logger = logging.getLogger(__name__)

# Where Twilio posts delivery reports; dunning_site/urls.py routes it to views.twilio_status.
STATUS_CALLBACK_PATH = "/webhooks/twilio/status/"
# Twilio cannot reach these, and the default development SITE_URL is one of them.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})

TWILIO_NOT_CONFIGURED = "Twilio is not configured: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and a sender."
TWILIO_ERROR = "Twilio error %(code)s (HTTP %(status)s): %(message)s"
TWILIO_UNREACHABLE = "Could not reach Twilio: %(error)s"
TWILIO_NO_ANSWER = (
    "Twilio received the request but its answer was lost (no answer in time, or the connection dropped), "
    "so the SMS may or may not have gone out. "
    "It is not retried automatically, to avoid texting the customer twice: check the Twilio console."
)
# Seconds to wait for Twilio. The default client waits forever, which would leave the message
# `sending` until the job is killed.
TWILIO_TIMEOUT = 15

# Twilio error codes that the same request will meet again, whenever it is retried
# (https://www.twilio.com/docs/api/errors). Any other HTTP 400 is treated the same way.
PERMANENT_TWILIO_ERRORS: dict[int, str] = {
    21211: "invalid 'To' phone number",
    21408: "sending to this region is not enabled",
    21602: "message body is required",
    21610: "the recipient replied STOP",
    21612: "the 'To' number cannot be reached from this sender",
    21614: "'To' is not a mobile number",
    21617: "the message body is too long",
}


class BaseSmsBackend:
    def send(self, *, to: str, body: str, idempotency_key: str, status_callback: str | None) -> str:
        """Send one SMS and return the provider's message id; raise TransportError on failure."""
        raise NotImplementedError


_console_ids = itertools.count(1)


class ConsoleBackend(BaseSmsBackend):
    """Shows the SMS in the terminal of `runserver` or the worker, so development needs no account."""

    def send(self, *, to: str, body: str, idempotency_key: str, status_callback: str | None) -> str:
        provider_id = f"console-{next(_console_ids)}"
        sys.stdout.write(
            f"SMS {provider_id} to {to} ({sms_segments(body)} segment(s), key {idempotency_key}):\n{body}\n{'-' * 40}\n"
        )
        sys.stdout.flush()
        return provider_id


@dataclass(frozen=True)
class SentSms:
    to: str
    body: str
    idempotency_key: str
    status_callback: str | None
    provider_id: str


# The locmem backend's outbox; tests clear it, as Django's mail.outbox.
outbox: list[SentSms] = []


class LocmemBackend(BaseSmsBackend):
    def send(self, *, to: str, body: str, idempotency_key: str, status_callback: str | None) -> str:
        # Shaped like a Twilio message SID, so webhook tests can use the ids it hands out.
        provider_id = f"SM{uuid.uuid4().hex}"
        outbox.append(SentSms(to, body, idempotency_key, status_callback, provider_id))
        return provider_id


class TwilioBackend(BaseSmsBackend):
    """Sends through Twilio's Messages API with the official client.

    `http_client` lets tests serve Twilio-shaped responses while the client's own request
    building and response parsing run unchanged.
    """

    def __init__(self, http_client: HttpClient | None = None) -> None:
        self.http_client = http_client

    def send(self, *, to: str, body: str, idempotency_key: str, status_callback: str | None) -> str:
        # Twilio has no idempotency key: exactly-once rests on the claim in message_deliver.
        sender: dict[str, Any]
        if settings.TWILIO_FROM_NUMBER:
            sender = {"from_": settings.TWILIO_FROM_NUMBER}
        elif settings.TWILIO_MESSAGING_SERVICE_SID:
            sender = {"messaging_service_sid": settings.TWILIO_MESSAGING_SERVICE_SID}
        else:
            sender = {}
        if not (settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN and sender):
            # Transient: the message waits and goes out once someone fixes the settings.
            raise TransportError(TWILIO_NOT_CONFIGURED, permanent=False)
        client = Client(
            settings.TWILIO_ACCOUNT_SID,
            settings.TWILIO_AUTH_TOKEN,
            http_client=self.http_client or TwilioHttpClient(timeout=TWILIO_TIMEOUT),
        )
        if status_callback:
            sender["status_callback"] = status_callback
        try:
            created = client.messages.create(to=to, body=body, **sender)
        except (TwilioRestException, TwilioServiceException) as error:
            raise _twilio_error(error) from error
        except (TwilioException, OSError) as error:  # requests' errors are OSErrors
            if handed_over(error):
                # The request reached Twilio but no answer came back: retrying could text twice.
                raise TransportError(TWILIO_NO_ANSWER, permanent=True) from error
            raise TransportError(TWILIO_UNREACHABLE % {"error": error}, permanent=False) from error
        logger.info("Twilio accepted SMS %s (key %s)", created.sid, idempotency_key)
        return str(created.sid)


def _twilio_error(error: TwilioRestException | TwilioServiceException) -> TransportError:
    """A 400 is a request Twilio will refuse again; 401/403/404 are settings an operator can fix,
    and 429/5xx pass: those are retried with backoff."""
    code = error.code
    description = (
        error.msg if isinstance(error, TwilioRestException) else (error.detail or error.title)
    ) or PERMANENT_TWILIO_ERRORS.get(code or 0, "")
    permanent = error.status == 400 or code in PERMANENT_TWILIO_ERRORS
    # str(error) is coloured for terminals; the message row gets plain text.
    return TransportError(
        TWILIO_ERROR % {"code": code, "status": error.status, "message": description}, permanent=permanent
    )


def get_backend() -> BaseSmsBackend:
    return import_string(settings.SMS_BACKEND)()


# GSM 03.38: the default alphabet (without the escape character, 0x1B) and the extension table,
# whose characters take an escape plus a septet.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
# (one-segment limit, per-segment limit once split): a split message spends room on its header.
GSM7_LIMITS = (160, 153)
UCS2_LIMITS = (70, 67)


def is_gsm7(text: str) -> bool:
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def sms_segments(text: str) -> int:
    """How many SMS the text is billed as. An empty text still counts as one message.

    One character outside GSM-7 (an emoji, "…", a curly quote) switches the whole message to
    UCS-2, halving what fits. A character is never split across two segments: an escaped GSM
    character or a UTF-16 surrogate pair that would straddle the boundary starts the next one.
    """
    if is_gsm7(text):
        sizes = [2 if char in GSM7_EXTENSION else 1 for char in text]
        single, per_part = GSM7_LIMITS
    else:
        sizes = [len(char.encode("utf-16-le")) // 2 for char in text]
        single, per_part = UCS2_LIMITS
    if sum(sizes) <= single:
        return 1
    segments, used = 1, 0
    for size in sizes:
        if used + size > per_part:
            segments, used = segments + 1, 0
        used += size
    return segments


# Left at the end of a shortened text before the ellipsis, which would read badly after them.
_TRAILING = " \t\r\n,;:.-"


def fit_sms(text: str, max_segments: int = 2) -> str:
    """Shorten the text at a word boundary, ending it with an ellipsis, so that it costs at most
    `max_segments` SMS. "..." is used while the kept text is GSM-7: the single character "…" is
    not, and would turn the whole message into UCS-2 and halve what fits."""
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    text = text.strip()
    if sms_segments(text) <= max_segments:
        return text

    def shortened(end: int) -> str:
        kept = text[:end].rstrip(_TRAILING)
        return kept + ("..." if is_gsm7(kept) else "…")

    def fits(end: int) -> bool:
        return sms_segments(shortened(end)) <= max_segments

    word_ends = [index for index, char in enumerate(text) if char.isspace()]
    end = _last_fitting(word_ends, fits)
    if end is None:  # a first word longer than the room: cut inside it
        end = _last_fitting(range(len(text)), fits) or 0
    return shortened(end)


def _last_fitting(ends: Sequence[int], fits: Callable[[int], bool]) -> int | None:
    """Binary search: a shorter cut of the same text never needs more segments than a longer one."""
    low, high, found = 0, len(ends) - 1, None
    while low <= high:
        middle = (low + high) // 2
        if fits(ends[middle]):
            found, low = ends[middle], middle + 1
        else:
            high = middle - 1
    return found


def status_callback_url() -> str | None:
    """Where Twilio should report delivery, or None when SITE_URL is unset or a loopback address
    Twilio could not reach (the development default). http and https are both passed: Twilio
    accepts either, and production runs on https anyway."""
    site_url = settings.SITE_URL.rstrip("/")
    if not site_url or urlsplit(site_url).hostname in LOOPBACK_HOSTS:
        return None
    return f"{site_url}{STATUS_CALLBACK_PATH}"


class SmsTransport(Transport):
    def send(self, message: Message) -> str:
        if not message.to_address:
            raise TransportError(NO_ADDRESS % {"channel": "sms"}, permanent=True)
        return get_backend().send(
            to=message.to_address,
            body=fit_sms(message.body),
            idempotency_key=message.idempotency_key,
            status_callback=status_callback_url(),
        )
