"""Promises made before promises were records: a case on hold with a reason "Promise to pay €60.50 by
2026-03-20" (what calls.promise_terms wrote) gets a pending Promise, so that the tick settles it when the
hold ends. The amount and the day come from the call that made the promise when its logged event says
them (exact minor units, and what the customer said), else from the reason; a hold whose reason says
neither (typed by hand) stays a plain hold. Reversible: the rows are deleted again."""

import datetime as dt
import re

from django.db import migrations

from dunning_site.lib.money import to_minor_units

PROMISE_HOLD = "Promise to pay"
REASON_SHAPE = re.compile(r"^Promise to pay (?P<amount>.+?) by (?P<day>\d{4}-\d{2}-\d{2})$")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _from_reason(reason: str, currency: str):
    """(day, amount in minor units) as the reason says them, or None."""
    match = REASON_SHAPE.match(reason.strip())
    number = NUMBER.search(match["amount"]) if match else None
    if number is None:
        return None
    try:
        return dt.date.fromisoformat(match["day"]), to_minor_units(number.group().replace(",", ""), currency)
    except ValueError:
        return None


def promises_from_holds(apps, schema_editor):
    Case = apps.get_model("collections", "Case")
    CaseEvent = apps.get_model("collections", "CaseEvent")
    Promise = apps.get_model("collections", "Promise")
    held = Case.objects.filter(status="paused", pause_reason__startswith=PROMISE_HOLD).exclude(
        promises__status="pending"
    )
    for case in held.iterator():
        said = _from_reason(case.pause_reason, case.currency)
        call = (
            CaseEvent.objects.filter(case=case, type="collections.call.logged", data__outcome="promise")
            .order_by("-at", "-pk")
            .first()
        )
        call_terms = None
        if call is not None and call.data.get("promised_on") and call.data.get("promised_amount"):
            call_terms = (dt.date.fromisoformat(call.data["promised_on"]), int(call.data["promised_amount"]))
        if call_terms and (said is None or said == call_terms):
            promised_on, amount = call_terms
            source, reason, created_by_id, created_at = "call", call.data.get("note", ""), call.user_id, call.at
        elif said is not None:
            promised_on, amount = said
            paused = (
                CaseEvent.objects.filter(case=case, type="collections.case.paused", data__reason=case.pause_reason)
                .order_by("-at", "-pk")
                .first()
            )
            source, reason = "case_page", ""
            created_by_id, created_at = (paused.user_id, paused.at) if paused else (None, case.updated_at)
        else:
            continue  # "Promise to pay" typed as a manual hold's reason: no day or amount to hold it to
        if amount <= 0:
            continue
        Promise.objects.create(
            case=case,
            customer_id=case.customer_id,
            promised_on=promised_on,
            amount=amount,
            currency=case.currency,
            source=source,
            reason=reason,
            status="pending",
            created_by_id=created_by_id,
            created_at=created_at,
        )


def promises_from_holds_undone(apps, schema_editor):
    Promise = apps.get_model("collections", "Promise")
    Promise.objects.filter(
        status="pending", case__status="paused", case__pause_reason__startswith=PROMISE_HOLD
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("collections", "0016_promises"),
    ]

    operations = [
        migrations.RunPython(promises_from_holds, promises_from_holds_undone),
    ]
