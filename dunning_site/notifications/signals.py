"""News that travels upward from notifications, which knows nothing of cases."""

import dataclasses
import datetime as dt

from django.dispatch import Signal

message_status_changed = Signal()  # kwargs: message, previous_status, event (sent, deferred, edited…), user

# Asked where a message leaves (its delivery's claim) and where a collector sends a draft: may this
# message go to its customer at `at`? Notifications knows nothing of cases, so the layer that does (a
# case on hold: a dispute, a promise, a manual hold) answers, by returning a SendVeto; None lets it go.
# kwargs: message, at.
message_send_check = Signal()


@dataclasses.dataclass(frozen=True)
class SendVeto:
    """Why a message must not go now. `until` None: it must not go at all (cancelled, or a draft refused);
    a moment: it waits until then (deferred, and the contact rules apply again when it is due).
    `reason` is for the message's row and the timeline, `refusal` for the staff member who pressed send."""

    reason: str
    refusal: str
    until: dt.datetime | None = None


def message_send_veto(*, message, at: dt.datetime) -> SendVeto | None:
    """The strongest answer to message_send_check: a cancellation before a deferral, the latest deferral."""
    vetoes = [answer for _receiver, answer in message_send_check.send(sender=type(message), message=message, at=at)]
    vetoes = [veto for veto in vetoes if isinstance(veto, SendVeto)]
    if not vetoes:
        return None
    final = [veto for veto in vetoes if veto.until is None]
    return final[0] if final else max(vetoes, key=lambda veto: veto.until)
