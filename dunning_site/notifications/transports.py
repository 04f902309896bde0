"""One transport per channel. A transport sends one message and returns the provider's id.

It raises TransportError(permanent=True) when retrying cannot help (an invalid address) and
TransportError(permanent=False) when it may (the provider is down): delivery retries with backoff.
"""

from email.utils import make_msgid

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils.module_loading import import_string

from dunning_site.accounts.models import Channel
from dunning_site.notifications.models import Message
from dunning_site.notifications.unsubscribe import unsubscribe_url

MAY_HAVE_GONE_OUT = (
    "The provider did not answer in time after receiving the message, so it may or may not have gone out "
    "(%(error)s). It is not sent again automatically: check the provider's log."
)
NO_TRANSPORT = "No transport is configured for the %(channel)s channel."
NO_ADDRESS = "The customer has no address for the %(channel)s channel."


def _timed_out_after_sending(error: BaseException) -> bool:
    """A read timeout means the request arrived; resending risks a duplicate (connect errors do not)."""
    import requests

    cause = error
    while cause is not None:
        if isinstance(cause, requests.ReadTimeout):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class TransportError(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


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
        if message.html_body:
            email.attach_alternative(message.html_body, "text/html")
        # Anymail sends these to the ESP and hands them back in tracking webhooks.
        email.metadata = {"tracking_token": message.tracking_token, "idempotency_key": message.idempotency_key}
        email.tags = ["dunning"]
        try:
            email.send()
        except AnymailRecipientsRefused as error:
            raise TransportError(str(error), permanent=True) from error
        except (AnymailAPIError, OSError) as error:
            if _timed_out_after_sending(error):
                raise TransportError(MAY_HAVE_GONE_OUT % {"error": error}, permanent=True) from error
            raise TransportError(str(error), permanent=False) from error
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
