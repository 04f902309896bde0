"""One transport per channel. A transport sends one message and returns the provider's id.

It raises TransportError(permanent=True) when retrying cannot help (an invalid address, a refusal,
or a message that may already have gone out) and TransportError(permanent=False) when it may (the
provider is down): delivery retries with backoff. Every transport reads a failed hand-over the same
way, through `handed_over()` and `provider_failure()` below.
"""

import http.client
import smtplib
from email.utils import make_msgid

import requests
import urllib3.exceptions
from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMultiAlternatives
from django.utils.module_loading import import_string

from dunning_site.accounts.models import Channel
from dunning_site.notifications.email_html import branded_html
from dunning_site.notifications.models import Message
from dunning_site.notifications.smtp import ReplyLostAfterBody
from dunning_site.notifications.unsubscribe import unsubscribe_url

MAY_HAVE_GONE_OUT = (
    "The provider did not answer in time after receiving the message, so it may or may not have gone out "
    "(%(error)s). It is not sent again automatically: check the provider's log."
)
NO_TRANSPORT = "No transport is configured for the %(channel)s channel."
NO_ADDRESS = "The customer has no address for the %(channel)s channel."
REFUSED = "The provider refused the message: %(reply)s"
RECIPIENT_REFUSED = "The provider refused the address: %(reply)s"

# Failures that prove the request never reached the provider (nothing to fear from a retry).
_NEVER_ARRIVED = (
    requests.ConnectTimeout,
    urllib3.exceptions.NewConnectionError,  # includes DNS failures and refused connections
    urllib3.exceptions.ConnectTimeoutError,
)
# Failures once the request (the SMTP body, the HTTP request) was handed over, before the answer.
_ANSWER_LOST = (
    ReplyLostAfterBody,
    requests.ReadTimeout,
    urllib3.exceptions.ReadTimeoutError,
    # The connection was open and dropped while the request went out or the answer was awaited.
    # Part of the request may not have arrived; counting it as arrived keeps "at most once".
    urllib3.exceptions.ProtocolError,
    http.client.RemoteDisconnected,
)


def _causes(error: BaseException):
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        cause = pending.pop(0)
        if id(cause) in seen:
            continue
        seen.add(id(cause))
        yield cause
        # requests and urllib3 keep the lower-level exception in args as well as in the chain.
        pending.extend(arg for arg in cause.args if isinstance(arg, BaseException))
        pending.extend(link for link in (cause.__cause__, cause.__context__) if link is not None)
        reason = getattr(cause, "reason", None)  # urllib3's MaxRetryError
        if isinstance(reason, BaseException):
            pending.append(reason)


def handed_over(error: BaseException) -> bool:
    """Did the request reach the provider before this failure? Then the provider may have acted on
    it (delivered the email, texted the customer) although no answer came back."""
    causes = list(_causes(error))
    if any(isinstance(cause, _NEVER_ARRIVED) for cause in causes):
        return False
    return any(isinstance(cause, _ANSWER_LOST) for cause in causes)


class TransportError(Exception):
    """`recipient_refused`: the provider refused the address itself, as a hard bounce would.
    `provider_id`: how the provider's log knows the message, when it is known without an answer
    (the Message-ID header of an email), so staff can look up one that may have gone out."""

    def __init__(
        self, message: str, *, permanent: bool, recipient_refused: bool = False, provider_id: str = ""
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.recipient_refused = recipient_refused
        self.provider_id = provider_id


def _smtp_reply(code: int, text: bytes | str) -> str:
    text = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(text.split())}"


def _one_line(error: BaseException) -> str:
    """Anymail describes an API error over several lines (with the ESP's JSON answer)."""
    return " ".join(str(error).split())


def provider_failure(error: BaseException) -> TransportError:
    """What a failed hand-over to an email provider (SMTP or an Anymail ESP) means for the message.

    Lost answer after the hand-over: may have gone out, never resent. A refusal (SMTP 5xx, an HTTP
    4xx from an ESP's API) is permanent, and a refused recipient retires the address. Anything that
    shows the provider busy or unreachable (SMTP 4xx, HTTP 429 and 5xx, connection errors,
    timeouts before the hand-over) is temporary. Wrong credentials or settings are temporary too:
    the messages wait until an operator fixes them, as they do for Twilio.
    """
    if handed_over(error):
        return TransportError(MAY_HAVE_GONE_OUT % {"error": error}, permanent=True)
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        replies = [(code, _smtp_reply(code, text)) for code, text in error.recipients.values()]
        permanent = bool(replies) and all(code >= 500 for code, _ in replies)
        reply = "; ".join(text for _, text in replies) or str(error)
        if permanent:
            return TransportError(RECIPIENT_REFUSED % {"reply": reply}, permanent=True, recipient_refused=True)
        return TransportError(reply, permanent=False)
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return TransportError(_smtp_reply(error.smtp_code, error.smtp_error), permanent=False)
    if isinstance(error, smtplib.SMTPResponseException):
        reply = _smtp_reply(error.smtp_code, error.smtp_error)
        if error.smtp_code >= 500:
            return TransportError(REFUSED % {"reply": reply}, permanent=True)
        return TransportError(reply, permanent=False)
    if isinstance(error, AnymailRecipientsRefused):
        reply = _one_line(error)
        return TransportError(RECIPIENT_REFUSED % {"reply": reply}, permanent=True, recipient_refused=True)
    if isinstance(error, AnymailAPIError):
        status = error.status_code
        if status is not None and 200 <= status < 300:
            # Accepted, but the answer could not be read: the message id is lost, not the message.
            return TransportError(MAY_HAVE_GONE_OUT % {"error": error}, permanent=True)
        # 429 is "later"; 401 and 403 are a wrong key or account an operator can fix, as for Twilio.
        if status is not None and 400 <= status < 500 and status not in (401, 403, 429):
            return TransportError(REFUSED % {"reply": _one_line(error)}, permanent=True)
        return TransportError(str(error), permanent=False)
    if isinstance(error, ImproperlyConfigured):
        return TransportError(str(error), permanent=False)
    if isinstance(error, AnymailError):  # an invalid address, a feature the ESP lacks: the same each time
        return TransportError(_one_line(error), permanent=True)
    # Connection refused, DNS, a timeout or a drop before the body was handed over.
    return TransportError(str(error) or repr(error), permanent=False)


class Transport:
    def send(self, message: Message) -> str:
        raise NotImplementedError


class EmailTransport(Transport):
    def send(self, message: Message) -> str:
        if not message.to_address:
            raise TransportError(NO_ADDRESS % {"channel": "email"}, permanent=True)
        # Our own Message-ID is the provider id for plain SMTP; an ESP's id replaces it when given.
        message_id = make_msgid(domain=settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].rstrip(">"))
        unsubscribe = unsubscribe_url(customer_id=message.customer_id)
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.body,
            to=[message.to_address],
            headers={
                "Message-ID": message_id,
                # RFC 2369 and RFC 8058: mail clients show an unsubscribe button that works in one click.
                "List-Unsubscribe": f"<{unsubscribe}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )
        # Every email has an HTML part beside its text: the template's own, or the text itself inside
        # the brand's frame (email_html.py), in the customer's language.
        html = message.html_body or branded_html(
            subject=message.subject, body=message.body, language=message.customer.language, unsubscribe_url=unsubscribe
        )
        email.attach_alternative(html, "text/html")
        # Anymail sends these to the ESP and hands them back in tracking webhooks.
        email.metadata = {"tracking_token": message.tracking_token, "idempotency_key": message.idempotency_key}
        email.tags = ["dunning"]
        try:
            email.send()
        except (AnymailError, ImproperlyConfigured, OSError) as error:  # OSError: smtplib's and the socket's
            failure = provider_failure(error)
            failure.provider_id = message_id
            raise failure from error
        status = getattr(email, "anymail_status", None)
        if status is not None and status.message_id is not None:
            return str(status.message_id)
        return message_id


class CallTransport(Transport):
    """A call is made by a person: "sending" hands the task, with its script, to the collectors'
    queue (the message's assignee, or anyone); the outcome is recorded on the message afterwards."""

    def send(self, message: Message) -> str:
        # Even without a usable number the task goes to a person: finding one is part of the job.
        return f"call-task-{message.pk}"


TRANSPORTS: dict[str, str] = {
    Channel.EMAIL: "dunning_site.notifications.transports.EmailTransport",
    Channel.SMS: "dunning_site.notifications.sms.SmsTransport",
    Channel.LETTER: "dunning_site.notifications.letters.LetterTransport",
    Channel.CALL: "dunning_site.notifications.transports.CallTransport",
}


def transport_for(channel: str) -> Transport:
    try:
        return import_string(TRANSPORTS[channel])()
    except (KeyError, ImportError):
        raise TransportError(NO_TRANSPORT % {"channel": channel}, permanent=True) from None
