"""What a fresh install starts with: the Default policy, its contact rules and the message templates
in English, German, French and Spanish (`manage.py dunning_setup`, which `make run` and seed_demo run).

Without a policy the tick opens no case, so an install that only ran `migrate` would never dun anyone.
Everything written here is an ordinary row that staff edit afterwards; running the setup again only
adds what is missing, so an edit is never undone, and a default message added by an upgrade (a new
key, a new language) reaches existing installs.

The copy lives in text files, one per message and language, so translators edit words, not Python:
default_messages/<key>/<language>.txt holds the subject on its first line, an empty line, then the body.
"""

import dataclasses
import datetime as dt
import functools
from pathlib import Path

from django.db import transaction

from dunning_site.accounts.models import Channel
from dunning_site.collections.models import Policy, Step
from dunning_site.notifications.models import WEEKDAYS, ContactRules, MessageTemplate, Tone
from dunning_site.notifications.rendering import template_errors

MESSAGES_DIRECTORY = Path(__file__).resolve().parent / "default_messages"
LANGUAGES = ("en", "de", "fr", "es")

FRIENDLY, SECOND, FIRM, FINAL = "reminder-friendly", "reminder-second", "reminder-firm", "final-notice"
# Sent by the engine when a decline needs the customer rather than another retry, and when the
# retries allowed for an invoice have run out (keys shared with collections.payment_retries).
CARD_UPDATE_NEEDED = "card-update-needed"
AUTHENTICATION_NEEDED = "payment-authentication-needed"
NOT_COLLECTED = "payment-not-collected"
# Pre-dunning's warning before the card on file expires (collections.predunning.TEMPLATE_KEY).
CARD_EXPIRING = "card-expiring"
TONES = {
    FRIENDLY: Tone.FRIENDLY,
    SECOND: Tone.FRIENDLY,
    FIRM: Tone.FIRM,
    FINAL: Tone.FINAL,
    CARD_UPDATE_NEEDED: Tone.FRIENDLY,
    AUTHENTICATION_NEEDED: Tone.FRIENDLY,
    NOT_COLLECTED: Tone.FIRM,
    CARD_EXPIRING: Tone.FRIENDLY,
}

POLICY_NAME = "Default"
GRACE_DAYS = 1
# Daytime in the customer's zone, never on a Sunday, and no more than three messages in any seven
# days whatever the channel: beyond that, reminders read as harassment and complaints follow.
CONTACT_RULES_NAME = "Default"
CONTACT_RULES = {
    "window_start": dt.time(8),
    "window_end": dt.time(20),
    "contact_days": [0, 1, 2, 3, 4, 5],
    "max_contacts_per_week": 3,
    "max_calls_per_week": 7,
}


@dataclasses.dataclass(frozen=True)
class LadderStep:
    offset_days: int
    action: str
    template_key: str | None
    tone: str
    requires_approval: bool


# Courteous first, firmer a week later; what can hurt the relationship (the final notice, suspending
# the service) waits for a manager's approval.
LADDER = (
    LadderStep(2, Step.Action.REMINDER, FRIENDLY, Tone.FRIENDLY, requires_approval=False),
    LadderStep(6, Step.Action.REMINDER, SECOND, Tone.FRIENDLY, requires_approval=False),
    LadderStep(12, Step.Action.REMINDER, FIRM, Tone.FIRM, requires_approval=False),
    LadderStep(20, Step.Action.FINAL_NOTICE, FINAL, Tone.FINAL, requires_approval=True),
    LadderStep(30, Step.Action.SUSPEND_SERVICE, None, Tone.FINAL, requires_approval=True),
)

MESSAGE_FILE_MALFORMED = "%(path)s: write the subject on the first line, then an empty line, then the body."
MESSAGE_INVALID = "Default message %(key)s (%(language)s) cannot be saved: %(errors)s"
MESSAGE_WITHOUT_TONE = "%(path)s: the message %(key)s has no tone in collections.defaults.TONES."
CREATED_POLICY = "Created the policy “%(name)s”: a case opens %(grace)s day(s) after the due date; %(ladder)s."
CREATED_CONTACT_RULES = (
    "Created the contact rules “%(name)s”: %(start)s–%(end)s in the customer's time zone, %(days)s, "
    "at most %(contacts)s contacts and %(calls)s calls in any 7 days."
)
CREATED_TEMPLATES = "Created %(count)s message template(s): %(which)s."
POLICIES_KEPT = "Policies exist already (%(names)s): left as they are."
NOTHING_CREATED = "Nothing to create: the default policy and every default message template exist already."


@dataclasses.dataclass(frozen=True)
class DefaultMessage:
    key: str
    language: str
    tone: str
    subject: str
    body: str


@dataclasses.dataclass
class SetupResult:
    policy: Policy | None  # the Default policy when this run created it
    created: list[str]  # what was written, one sentence a line, for whoever runs the setup


@functools.cache
def default_messages() -> tuple[DefaultMessage, ...]:
    """Every default message, read from its file; raises ValueError naming the file that is malformed."""
    messages = []
    for path in sorted(MESSAGES_DIRECTORY.glob("*/*.txt")):
        key, language = path.parent.name, path.stem
        if key not in TONES:
            raise ValueError(MESSAGE_WITHOUT_TONE % {"path": path, "key": key})
        subject, separator, body = path.read_text(encoding="utf-8").partition("\n\n")
        if not separator or "\n" in subject or not subject.strip() or not body.strip():
            raise ValueError(MESSAGE_FILE_MALFORMED % {"path": path})
        messages.append(DefaultMessage(key, language, TONES[key], subject.strip(), body.rstrip() + "\n"))
    return tuple(messages)


def _validated() -> tuple[DefaultMessage, ...]:
    """The messages, each checked as the template editor checks a save, before any is written."""
    messages = default_messages()
    for message in messages:
        if errors := template_errors(subject=message.subject, body=message.body):
            found = "; ".join(problem for problems in errors.values() for problem in problems)
            raise ValueError(MESSAGE_INVALID % {"key": message.key, "language": message.language, "errors": found})
    return messages


@transaction.atomic
def dunning_setup() -> SetupResult:
    """The default message templates that are missing, and the Default policy (with its contact rules)
    when the database has no policy at all. A policy that exists, whatever staff named or made of it,
    means someone has set collections up: a second ladder competing with theirs would dun customers
    they chose not to dun."""
    created: list[str] = []
    new_templates = []
    for message in _validated():
        _, was_created = MessageTemplate.objects.get_or_create(
            key=message.key,
            language=message.language,
            segment="",
            defaults={
                "channel": Channel.EMAIL,
                "tone": message.tone,
                "subject": message.subject,
                "body": message.body,
            },
        )
        if was_created:
            new_templates.append(message)
    if new_templates:
        by_key: dict[str, list[str]] = {}
        for message in new_templates:
            by_key.setdefault(message.key, []).append(message.language)
        which = "; ".join(f"{key} ({', '.join(languages)})" for key, languages in by_key.items())
        created.append(CREATED_TEMPLATES % {"count": len(new_templates), "which": which})

    policy = None
    names = list(Policy.objects.order_by("priority", "name").values_list("name", flat=True))
    if names:
        created.append(POLICIES_KEPT % {"names": ", ".join(f"“{name}”" for name in names)})
    else:
        policy = _policy_create(created)
    if not new_templates and policy is None:
        created.insert(0, NOTHING_CREATED)
    return SetupResult(policy=policy, created=created)


def _policy_create(created: list[str]) -> Policy:
    rules, rules_created = ContactRules.objects.get_or_create(name=CONTACT_RULES_NAME, defaults=CONTACT_RULES)
    if rules_created:
        created.append(
            CREATED_CONTACT_RULES
            % {
                "name": rules.name,
                "start": f"{rules.window_start:%H:%M}",
                "end": f"{rules.window_end:%H:%M}",
                "days": _days(rules.contact_days),
                "contacts": rules.max_contacts_per_week,
                "calls": rules.max_calls_per_week,
            }
        )
    policy = Policy.objects.create(name=POLICY_NAME, priority=100, grace_days=GRACE_DAYS, contact_rules=rules)
    english = {
        template.key: template
        for template in MessageTemplate.objects.filter(
            key__in=[step.template_key for step in LADDER if step.template_key], language="en", segment=""
        )
    }
    Step.objects.bulk_create(
        Step(
            policy=policy,
            position=position,
            offset_days=step.offset_days,
            action=step.action,
            channel=Channel.EMAIL,
            template=english.get(step.template_key) if step.template_key else None,
            tone=step.tone,
            requires_approval=step.requires_approval,
        )
        for position, step in enumerate(LADDER, start=1)
    )
    ladder = ", ".join(
        f"day {step.offset_days} {Step.Action(step.action).label.lower()}"
        + (" (after approval)" if step.requires_approval else "")
        for step in LADDER
    )
    created.append(CREATED_POLICY % {"name": policy.name, "grace": policy.grace_days, "ladder": ladder})
    return policy


def _days(days: list[int]) -> str:
    """ "Monday to Saturday" rather than a list of numbers, for whoever reads the setup's output."""
    if len(days) > 2 and sorted(days) == list(range(min(days), max(days) + 1)):
        return f"{WEEKDAYS[min(days)]} to {WEEKDAYS[max(days)]}"
    return ", ".join(WEEKDAYS[day] for day in sorted(days))
