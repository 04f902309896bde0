"""The contact rules, decided at send time for one message.

Pure functions over plain values, so every rule is easy to test and to reason about: a message
is sent now, deferred to the next moment every rule allows (never dropped), or cancelled with a
reason when no moment ever will (an opt-out, a do-not-contact flag, no consent for SMS).
"""

import dataclasses
import datetime as dt
import logging
import zoneinfo
from collections.abc import Sequence

from dunning_site.accounts.models import Channel
from dunning_site.accounts.time_zones import world_zones
from dunning_site.notifications.models import contact_days_problem, default_contact_days

logger = logging.getLogger(__name__)

WEEK = dt.timedelta(days=7)

OUTSIDE_HOURS = "Outside the customer's contact hours (%(start)s–%(end)s, %(days)s, %(zone)s)."
OVER_CONTACT_CAP = "Already %(count)d contacts in the last 7 days (the limit is %(cap)d)."
OVER_CALL_CAP = "Already %(count)d call attempts in the last 7 days (the limit is %(cap)d)."
DO_NOT_CONTACT = "The customer must not be contacted (%(reason)s)."
NO_SMS_CONSENT = "The customer has not agreed to receive SMS."
OPTED_OUT = "The customer opted out of %(channel)s."
ADDRESS_UNUSABLE = "The customer's %(what)s is unusable: %(reason)s"
OUTSIDE_HOURS_SOMEWHERE = (
    "Outside the contact hours (%(start)s–%(end)s, %(days)s) in one of the zones the customer may be in "
    "(their time zone is a guess: %(zones)s)."
)
NO_COMMON_HOURS = (
    "No hour is within the contact hours in every zone the customer may be in (their time zone is a guess: "
    "%(zones)s). Set the customer's time zone (or their address in Stripe) to send this."
)
TIME_ZONE_UNKNOWN = (
    "The customer's time zone is unknown, not even their country: no hour is daytime everywhere on earth. "
    "Set the customer's time zone (or their address in Stripe) to send this."
)
# A message no hour allows is looked at again this often: staff may have set the zone meanwhile.
NO_HOURS_RECHECK = dt.timedelta(hours=12)


SAFE_CONTACT_DAYS = tuple(default_contact_days())


@dataclasses.dataclass(frozen=True)
class Rules:
    """A policy's contact rules as plain values (the defaults are the safe ones)."""

    window_start: dt.time = dt.time(8)
    window_end: dt.time = dt.time(20)
    contact_days: tuple[int, ...] = SAFE_CONTACT_DAYS
    max_contacts_per_week: int = 3
    max_calls_per_week: int = 7

    def __post_init__(self) -> None:
        """Days that allow no moment (none, or not weekdays: a row written around the model's
        validator) would hold a message for ever, each delivery failing again. The safe days take
        their place, the other rules still apply, and the log says so."""
        days = self.contact_days
        problem = contact_days_problem(list(days)) if isinstance(days, list | tuple) else "not a list"
        if problem:
            logger.warning("Unusable contact days %.100r (%s): Monday to Saturday are used instead", days, problem)
            days = SAFE_CONTACT_DAYS
        object.__setattr__(self, "contact_days", tuple(sorted(days)))

    @classmethod
    def of(cls, contact_rules) -> "Rules":
        if contact_rules is None:
            return cls()
        return cls(
            window_start=contact_rules.window_start,
            window_end=contact_rules.window_end,
            contact_days=contact_rules.contact_days,
            max_contacts_per_week=contact_rules.max_contacts_per_week,
            max_calls_per_week=contact_rules.max_calls_per_week,
        )


@dataclasses.dataclass(frozen=True)
class Recipient:
    """What the rules need to know about the customer, as it stands at send time."""

    time_zone: str
    # When the zone is a guess: every zone the customer may be in (messages go at hours that are
    # daytime in all of them). `time_zone_unknown`: not even the country is known, the whole world.
    time_zones: tuple[str, ...] = ()
    time_zone_unknown: bool = False
    do_not_contact_reason: str = ""  # non-empty: contact is forbidden
    sms_consent: bool = False
    opted_out: frozenset[str] = frozenset()
    email_unusable_reason: str = ""
    phone_unusable_reason: str = ""


@dataclasses.dataclass(frozen=True)
class Decision:
    send: bool
    defer_until: dt.datetime | None = None
    cancel: bool = False
    reason: str = ""


SEND = Decision(send=True)


def decide(
    *, channel: str, now: dt.datetime, rules: Rules, recipient: Recipient, recent: Sequence[tuple[str, dt.datetime]]
) -> Decision:
    """`recent` is (channel, when) of the contacts already made in the last 7 days."""
    if recipient.do_not_contact_reason:
        return Decision(send=False, cancel=True, reason=DO_NOT_CONTACT % {"reason": recipient.do_not_contact_reason})
    if channel in recipient.opted_out:
        return Decision(send=False, cancel=True, reason=OPTED_OUT % {"channel": _channel_name(channel)})
    if channel == Channel.SMS and not recipient.sms_consent:
        return Decision(send=False, cancel=True, reason=NO_SMS_CONSENT)
    if channel == Channel.EMAIL and recipient.email_unusable_reason:
        reason = ADDRESS_UNUSABLE % {"what": "email address", "reason": recipient.email_unusable_reason}
        return Decision(send=False, cancel=True, reason=reason)
    if channel in (Channel.SMS, Channel.CALL) and recipient.phone_unusable_reason:
        reason = ADDRESS_UNUSABLE % {"what": "phone number", "reason": recipient.phone_unusable_reason}
        return Decision(send=False, cancel=True, reason=reason)

    zones = _zones_of(recipient)
    moment, reasons = now, []
    # Each rule can only push the moment later, so a few rounds settle on one that satisfies all.
    for _ in range(20):
        later, reason = _cap_allows(channel, moment, rules, recent)
        if later != moment:
            moment, reasons = later, [*reasons, reason]
            continue
        common = next_common_opening(moment, zones, rules)
        if common is None:
            return Decision(send=False, defer_until=now + NO_HOURS_RECHECK, reason=_no_common_hours(recipient))
        if common != moment:
            moment = common
            reasons.append(_outside_hours(rules, recipient))
            continue
        break
    if moment == now:
        return SEND
    return Decision(send=False, defer_until=moment, reason=reasons[0])


def next_common_opening(moment: dt.datetime, zones: Sequence[zoneinfo.ZoneInfo], rules: Rules) -> dt.datetime | None:
    """The first moment from `moment` on that is inside the contact window in every zone, or None
    when no such moment comes within a week (the zones are too far apart: the window's pattern
    repeats weekly, so none ever will until a DST change, and the caller looks again later)."""
    limit = moment + WEEK + dt.timedelta(days=1)
    while moment <= limit:
        # Every zone's next opening; the latest of them is the earliest moment all could allow.
        later = max(next_window_opening(moment, zone, rules) for zone in zones)
        if later == moment:
            return moment
        moment = later
    return None


def next_window_opening(moment: dt.datetime, zone: zoneinfo.ZoneInfo, rules: Rules) -> dt.datetime:
    """`moment` itself when it is inside the contact window in the customer's zone, else the next
    opening of the window on an allowed day. Local wall-clock times, so DST shifts are honoured."""
    local = moment.astimezone(zone)
    for offset in range(8):
        day = local.date() + dt.timedelta(days=offset)
        if day.weekday() not in rules.contact_days:
            continue
        opening = _local(day, rules.window_start, zone)
        closing = _local(day, rules.window_end, zone)
        if moment < closing:
            return max(moment, opening)
    raise ValueError("No contact day is allowed by these rules.")


def _local(day: dt.date, time: dt.time, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The instant a local wall-clock time is reached. A time the clocks skip (02:30 on a spring-
    forward night) is reached at the jump itself: a window opening then opens at the jump, and a
    window closing then is closed once the clocks have jumped past it. A repeated time (autumn)
    counts from its first occurrence."""
    wall = dt.datetime.combine(day, time)
    instant = wall.replace(tzinfo=zone).astimezone(dt.UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # Skipped: find the jump, the first minute whose local time is at or past the wall time.
    moment = wall.replace(tzinfo=zone, fold=1).astimezone(dt.UTC).replace(second=0, microsecond=0)
    while moment.astimezone(zone).replace(tzinfo=None) < wall:
        moment += dt.timedelta(minutes=1)
    return moment


def _cap_allows(
    channel: str, moment: dt.datetime, rules: Rules, recent: Sequence[tuple[str, dt.datetime]]
) -> tuple[dt.datetime, str]:
    is_call = channel == Channel.CALL
    cap = rules.max_calls_per_week if is_call else rules.max_contacts_per_week
    times = sorted(at for kind, at in recent if (kind == Channel.CALL) == is_call and at > moment - WEEK)
    if len(times) < cap:
        return moment, ""
    # The window frees a slot when the oldest contact that keeps it full turns 7 days old.
    frees_at = times[len(times) - cap] + WEEK
    message = OVER_CALL_CAP if is_call else OVER_CONTACT_CAP
    return max(moment, frees_at + dt.timedelta(seconds=1)), message % {"count": len(times), "cap": cap}


def _zones_of(recipient: Recipient) -> list[zoneinfo.ZoneInfo]:
    if recipient.time_zone_unknown:
        return [zoneinfo.ZoneInfo(zone) for zone in world_zones()]
    return [zoneinfo.ZoneInfo(zone) for zone in recipient.time_zones or (recipient.time_zone,)]


def _zone_list(zones: Sequence[str]) -> str:
    shown = ", ".join(zones[:6])
    return f"{shown} and {len(zones) - 6} more" if len(zones) > 6 else shown


def _no_common_hours(recipient: Recipient) -> str:
    if recipient.time_zone_unknown:
        return TIME_ZONE_UNKNOWN
    return NO_COMMON_HOURS % {"zones": _zone_list(recipient.time_zones)}


def _outside_hours(rules: Rules, recipient: Recipient) -> str:
    if recipient.time_zones or recipient.time_zone_unknown:
        zones = world_zones() if recipient.time_zone_unknown else recipient.time_zones
        return OUTSIDE_HOURS_SOMEWHERE % {**_hours_and_days(rules), "zones": _zone_list(zones)}
    return OUTSIDE_HOURS % {**_hours_and_days(rules), "zone": recipient.time_zone}


def _hours_and_days(rules: Rules) -> dict[str, str]:
    days = rules.contact_days
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    if len(days) > 1 and list(days) == list(range(days[0], days[-1] + 1)):
        day_text = f"{names[days[0]]}–{names[days[-1]]}"
    else:
        day_text = ", ".join(names[day] for day in days)
    return {
        "start": rules.window_start.strftime("%H:%M"),
        "end": rules.window_end.strftime("%H:%M"),
        "days": day_text,
    }


def _channel_name(channel: str) -> str:
    return dict(Channel.choices).get(channel, channel)
