"""A real SMTP server (aiosmtpd, in a thread) that misbehaves on purpose, to test delivery under faults.

Faults are planned per connection, in order: `server.plan("RCPT", "451 4.3.0 Try again later", times=3)`
makes the first three connections get that answer to RCPT, and the next ones behave. A stage is one of
EHLO, MAIL, RCPT, DATA (the command, before the body) or BODY (after the final "." of the message);
an action is a reply to send, DROP (cut the connection) or HANG (say nothing until the client gives up).
`refuse_recipient()` refuses one address at RCPT on every connection, as a server that does not know it.

The server counts what reached it: `bodies` holds every message whose final "." arrived, whatever the
answer; `accepted` the Message-IDs of those it answered 250 to (delivered, as far as the sender can know).
"""

import asyncio
import dataclasses
import email
import email.policy
import socket
import threading
from collections import Counter

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

DROP = "drop"
HANG = "hang"
STAGES = ("EHLO", "MAIL", "RCPT", "DATA", "BODY")
# Long enough for any client in these tests to give up first; the server task ends with the connection.
_HANG_SECONDS = 120


@dataclasses.dataclass(frozen=True)
class Fault:
    stage: str
    action: str


class FaultySmtpServer:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.accepted: list[str] = []
        self.connections = 0
        self._faults: list[Fault] = []
        self._refused: dict[str, str] = {}
        self._lock = threading.Lock()
        self.hostname = "127.0.0.1"
        self.port = _free_port()
        self._controller = _Controller(self, hostname=self.hostname, port=self.port)

    # -- planning ------------------------------------------------------------------------------
    def plan(self, stage: str, action: str, *, times: int) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}")
        with self._lock:
            self._faults.extend([Fault(stage, action)] * times)

    def refuse_recipient(self, address: str, reply: str) -> None:
        self._refused[address.lower()] = reply

    def next_fault(self) -> Fault | None:
        with self._lock:
            self.connections += 1
            return self._faults.pop(0) if self._faults else None

    # -- what arrived --------------------------------------------------------------------------
    @property
    def received_ids(self) -> list[str]:
        return [message_id(body) for body in self.bodies]

    def duplicates(self) -> int:
        """Messages accepted more than once: each would be a second email in the customer's inbox."""
        return sum(count - 1 for count in Counter(self.accepted).values())

    def start(self) -> "FaultySmtpServer":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> "FaultySmtpServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def message_id(body: bytes) -> str:
    return str(email.message_from_bytes(body, policy=email.policy.default)["Message-ID"])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Handler:
    def __init__(self, server: FaultySmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options) -> str:
        refusal = self.server._refused.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp, session, envelope) -> str:
        self.server.bodies.append(envelope.original_content)
        if smtp.fault is not None and smtp.fault.stage == "BODY":
            reply = await smtp.misbehave(smtp.fault.action)
            if reply is not None:
                return reply
        self.server.accepted.append(message_id(envelope.original_content))
        return "250 2.0.0 Message accepted for delivery"


class _FaultySMTP(SMTP):
    """One connection: its fault (if any) is chosen when it opens, then played at its stage."""

    def __init__(self, handler: _Handler, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.fault: Fault | None = None

    def connection_made(self, transport) -> None:
        self.fault = self.event_handler.server.next_fault()
        super().connection_made(transport)

    async def misbehave(self, action: str) -> str | None:
        """Play the action: a reply is returned for the caller to send; DROP and HANG never return."""
        if action == DROP:
            self.transport.abort()
        if action in (DROP, HANG):
            await asyncio.sleep(_HANG_SECONDS)  # cancelled by aiosmtpd when the connection goes
            raise ConnectionAbortedError(action)
        return action

    async def _command(self, stage: str, handle, arg) -> None:
        if self.fault is not None and self.fault.stage == stage:
            await self.push(await self.misbehave(self.fault.action))
            return
        await handle(arg)

    async def smtp_EHLO(self, arg) -> None:
        await self._command("EHLO", super().smtp_EHLO, arg)

    async def smtp_MAIL(self, arg) -> None:
        await self._command("MAIL", super().smtp_MAIL, arg)

    async def smtp_RCPT(self, arg) -> None:
        await self._command("RCPT", super().smtp_RCPT, arg)

    async def smtp_DATA(self, arg) -> None:
        await self._command("DATA", super().smtp_DATA, arg)


class _Controller(Controller):
    def __init__(self, server: FaultySmtpServer, **kwargs) -> None:
        super().__init__(_Handler(server), **kwargs)

    def factory(self) -> _FaultySMTP:
        return _FaultySMTP(self.handler, **self.SMTP_kwargs)
