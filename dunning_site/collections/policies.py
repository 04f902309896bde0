"""Saving a policy and its ladder from the managers' screen (the admin saves through its own inline)."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, ProtectedError

from dunning_site.accounts.models import User
from dunning_site.collections.models import (
    Policy,
    Step,
)
from dunning_site.lib.admin import admin_history_record

STEP_REACHED_MEANWHILE = "A case reached a step you deleted while you were editing the ladder: nothing was saved."


LADDER_CHANGED_MEANWHILE = "Someone else changed this policy at the same time: nothing was saved. Reload and try again."


# Steps whose position changes are parked out of the way first, so that two steps can swap places
# without tripping the one-step-per-position constraint halfway through.
PARKED_POSITION = 10_000


@transaction.atomic
def policy_save(*, form, steps, user: User) -> Policy:
    """Save a validated PolicyForm and its StepFormSet together, or nothing; the admin's history
    records who changed what. (The forms are passed because they know what changed.)"""
    added = form.instance.pk is None
    try:
        with transaction.atomic():
            policy = form.save()
            steps.instance = policy
            steps.save(commit=False)
            for step in steps.deleted_objects:
                step.delete()
            moved = [step.pk for step, fields in steps.changed_objects if "position" in fields]
            Step.objects.filter(pk__in=moved).update(position=F("position") + PARKED_POSITION)
            for step, _ in steps.changed_objects:
                step.save()
            for step in steps.new_objects:
                step.save()
    except ProtectedError:
        raise ValidationError(STEP_REACHED_MEANWHILE) from None
    except IntegrityError:
        raise ValidationError(LADDER_CHANGED_MEANWHILE) from None
    admin_history_record(user=user, obj=policy, form=form, formsets=[steps], added=added)
    return policy
