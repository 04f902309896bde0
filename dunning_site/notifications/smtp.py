"""Django's SMTP email backend, telling a failure before the message was handed over from one after.

SMTP hands a message over when the client writes the final "." of DATA; the server then delivers
it whether or not its reply ("250 queued as …") reaches us. A connection that drops, or a reply
that never comes, after that moment means the message may have gone out: sending it again risks a
duplicate in the customer's inbox. Before that moment (connect, EHLO, MAIL, RCPT, the DATA command
itself, or while the body is still being written) nothing was delivered and trying again is safe.

smtplib does not say which side of that line a failure fell on, so the connection records it and
the backend raises `ReplyLostAfterBody` for the second kind; transports.handed_over() reads it.
"""

import smtplib

from django.core.mail.backends import smtp


class ReplyLostAfterBody(smtplib.SMTPServerDisconnected):
    """The server received the whole message, then the connection dropped or timed out before it
    said whether it accepted it."""


class _RecordsHandOver:
    """Mixed into smtplib's connection classes: `body_handed_over` turns true once the message's
    terminating CRLF.CRLF has been written to the socket, and false again at the next DATA."""

    body_handed_over = False

    def data(self, msg):
        self.body_handed_over = False
        return super().data(msg)

    def send(self, s):
        super().send(s)
        # Commands are sent as str; only data() sends bytes, the body with its terminating dot.
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.body_handed_over = True


class SMTP(_RecordsHandOver, smtplib.SMTP):
    pass


class SMTP_SSL(_RecordsHandOver, smtplib.SMTP_SSL):
    pass


class EmailBackend(smtp.EmailBackend):
    """Django's SMTP backend (EMAIL_HOST, EMAIL_TIMEOUT, TLS, login: all the same settings) whose
    failures after the body was handed over are raised as ReplyLostAfterBody."""

    @property
    def connection_class(self):
        return SMTP_SSL if self.use_ssl else SMTP

    def _send(self, email_message) -> bool:
        try:
            return super()._send(email_message)
        except OSError as error:  # smtplib's exceptions and socket errors alike
            replied = isinstance(error, smtplib.SMTPResponseException) and 400 <= error.smtp_code < 600
            if getattr(self.connection, "body_handed_over", False) and not replied:
                raise ReplyLostAfterBody(f"No reply after the message was handed over ({error})") from error
            raise
