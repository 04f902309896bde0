import factory

from dunning_site.collections.models import Policy, Step
from dunning_site.notifications.tests.factories import MessageTemplateFactory


class PolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Policy

    name = factory.Sequence(lambda n: f"Policy {n}")
    grace_days = 1


def ladder(policy: Policy, *steps: tuple) -> list[Step]:
    """Add steps given as (offset_days, action, tone, requires_approval) in order."""
    created = []
    for position, (offset, action, tone, requires_approval) in enumerate(steps, start=1):
        template = MessageTemplateFactory(
            key=f"{policy.pk}-{position}-{action}",
            tone=tone,
            subject=f"[{tone}] Day {offset}: {{{{ total_overdue }}}} overdue",
        )
        created.append(
            Step.objects.create(
                policy=policy,
                position=position,
                offset_days=offset,
                action=action,
                tone=tone,
                template=template if action in Step.MESSAGE_ACTIONS else None,
                requires_approval=requires_approval,
            )
        )
    return created


def standard_policy(**kwargs) -> Policy:
    """The ladder of the acceptance scenario: day 3 friendly, day 10 firm, day 20 final notice
    (approval), day 30 suspension (approval)."""
    policy = PolicyFactory(**kwargs)
    ladder(
        policy,
        (3, Step.Action.REMINDER, "friendly", False),
        (10, Step.Action.REMINDER, "firm", False),
        (20, Step.Action.FINAL_NOTICE, "final", True),
        (30, Step.Action.SUSPEND_SERVICE, "final", True),
    )
    return policy
