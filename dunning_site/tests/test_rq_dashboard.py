"""The RQ dashboard empties queues and re-runs jobs: Admins (superusers or the Admin group) only."""

import pytest
from django.contrib.auth.models import Group

from dunning_site.accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PAGES = ["/django-rq/", "/django-rq/queues/0/", "/django-rq/stats.json"]


def staff(client, role: str | None = None, **fields):
    user = UserFactory(username=f"staff-{role or 'none'}", is_staff=True, **fields)
    if role:
        user.groups.add(Group.objects.get(name=role))
    client.force_login(user)


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("role", ["Viewer", "Collector", "Manager", None])
def test_staff_who_are_not_admins_are_refused(client, role, page):
    staff(client, role)
    assert client.get(page).status_code == 403


@pytest.mark.parametrize("page", PAGES)
def test_admins_see_the_dashboard(client, page):
    staff(client, "Admin")
    assert client.get(page).status_code == 200


def test_superusers_see_the_dashboard(client):
    staff(client, is_superuser=True)
    assert client.get("/django-rq/").status_code == 200


def test_visitors_are_sent_to_sign_in(client):
    response = client.get("/django-rq/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert client.get("/django-rq/stats.json").status_code != 200, "without the API token"


def test_the_admin_has_no_second_door_to_the_dashboard(client):
    staff(client, "Viewer")
    assert client.get("/admin/django_rq/dashboard/").status_code == 404
