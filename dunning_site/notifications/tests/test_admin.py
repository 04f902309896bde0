"""The contact rules' admin takes only real weekdays (issue 9): it saved [9, -1], {"a": 1}, ["x"] and
a list of 200,000 entries, and a policy under [9, -1] then failed every delivery."""

import json

import pytest

from dunning_site.notifications.models import (
    CONTACT_DAY_REPEATED,
    CONTACT_DAY_UNKNOWN,
    CONTACT_DAYS_EMPTY,
    CONTACT_DAYS_NOT_A_LIST,
    CONTACT_DAYS_TOO_MANY,
    ContactRules,
)

pytestmark = pytest.mark.django_db

ADD = "/admin/notifications/contactrules/add/"
FORM = {
    "name": "Weekdays only",
    "window_start": "09:00",
    "window_end": "18:00",
    "max_contacts_per_week": "3",
    "max_calls_per_week": "7",
}


@pytest.mark.parametrize(
    ("typed", "refusal"),
    [
        ("[9,-1]", CONTACT_DAY_UNKNOWN % {"day": "9"}),
        ("[0, -1]", CONTACT_DAY_UNKNOWN % {"day": "-1"}),
        ('{"a":1}', CONTACT_DAYS_NOT_A_LIST),
        ('["x"]', CONTACT_DAY_UNKNOWN % {"day": '"x"'}),
        ('["1"]', CONTACT_DAY_UNKNOWN % {"day": '"1"'}),
        ("[1.5]", CONTACT_DAY_UNKNOWN % {"day": "1.5"}),
        ("[true]", CONTACT_DAY_UNKNOWN % {"day": "true"}),
        ("[0, 1, 0]", CONTACT_DAY_REPEATED % {"day": 0}),
        ("3", CONTACT_DAYS_NOT_A_LIST),
        ("[]", CONTACT_DAYS_EMPTY),
        (json.dumps([day % 7 for day in range(200_000)]), CONTACT_DAYS_TOO_MANY % {"count": "200,000"}),
    ],
)
def test_the_admin_refuses_days_that_are_not_weekdays(admin_client, typed, refusal):
    response = admin_client.post(ADD, FORM | {"contact_days": typed})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"contact_days": [refusal]}
    assert not ContactRules.objects.exists()


def test_the_admin_saves_real_weekdays_as_typed(admin_client):
    response = admin_client.post(ADD, FORM | {"contact_days": "[4, 0, 1, 2, 3]"})
    assert response.status_code == 302
    rules = ContactRules.objects.get()
    assert (rules.name, rules.contact_days) == ("Weekdays only", [4, 0, 1, 2, 3])
    response = admin_client.post(f"/admin/notifications/contactrules/{rules.pk}/change/", FORM | {"contact_days": "[]"})
    assert response.context["adminform"].form.errors == {"contact_days": [CONTACT_DAYS_EMPTY]}
    rules.refresh_from_db()
    assert rules.contact_days == [4, 0, 1, 2, 3]
