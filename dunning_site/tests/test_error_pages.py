"""A refusal (403) or a missing page (404) says what is missing in words, inside the site's frame
with a way back to the worklist, for staff, visitors and inside the admin; a 403 is logged as one
line, without a traceback."""

import logging

import pytest
from django.contrib.auth.models import Group

from dunning_site.accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

NO_RIGHT = "Your role cannot do this: ask a manager."
NO_PAGE = "This page does not exist"
BACK = '<a href="/">Back to the worklist</a>'
NAVIGATION = 'aria-label="Main"'


def signed_in(client, role: str | None, **fields):
    user = UserFactory(username=f"someone-{role or 'without-role'}", first_name="Vera", **fields)
    if role:
        user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


def test_a_role_without_the_right_reads_why_and_finds_its_way_back(client):
    signed_in(client, "Viewer")
    response = client.get("/policies/new/")
    assert response.status_code == 403
    page = response.content.decode()
    assert NO_RIGHT in page and BACK in page
    assert NAVIGATION in page and "Vera" in page, "the page sits in the site's frame"
    assert "<title>Not allowed · Dunning</title>" in page


@pytest.mark.urls("dunning_site.tests.error_urls")
def test_a_visitor_refused_reads_the_page_too(client):
    response = client.get("/refused/")
    assert response.status_code == 403
    page = response.content.decode()
    assert "This page is for signed-in staff whose role allows it." in page
    assert '<a href="/accounts/login/">Sign in</a>' in page and BACK in page
    assert NAVIGATION not in page and NO_RIGHT not in page


def test_a_refusal_inside_the_admin_is_the_same_page(client):
    signed_in(client, None, is_staff=True)  # staff, but no permission on cases
    response = client.get("/admin/collections/case/")
    assert response.status_code == 403
    page = response.content.decode()
    assert NO_RIGHT in page and BACK in page
    assert '<a href="/admin/">Admin</a>' in page


@pytest.mark.parametrize("role", ["Collector", None])
def test_a_page_that_does_not_exist_says_so(client, role):
    if role:
        signed_in(client, role)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert NO_PAGE in page and BACK in page
    assert (NAVIGATION in page) == (role is not None)


def test_a_missing_page_inside_the_admin_is_the_same_page(client):
    signed_in(client, None, is_staff=True)
    response = client.get("/admin/no-such-thing/")
    assert response.status_code == 404
    assert NO_PAGE in response.content.decode()


def test_a_refusal_is_logged_as_one_line_without_a_traceback(client, caplog):
    signed_in(client, "Viewer")
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get("/policies/new/").status_code == 403
    (record,) = [record for record in caplog.records if record.name == "django.request"]
    assert (record.levelname, record.getMessage()) == ("WARNING", "Forbidden (Permission denied): /policies/new/")
    assert record.exc_info is None
    assert "Traceback" not in caplog.text and "PermissionDenied" not in caplog.text


@pytest.mark.urls("dunning_site.tests.error_urls")
def test_an_unexpected_error_keeps_its_traceback(client, caplog):
    client.raise_request_exception = False
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get("/broken/").status_code == 500
    (record,) = [record for record in caplog.records if record.name == "django.request"]
    assert record.levelname == "ERROR" and record.exc_info is not None
    assert "Traceback" in caplog.text and "ValueError: an unexpected error" in caplog.text
