"""Printable letters name the customer and what they owe: only staff who may read messages download them."""

import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile

from dunning_site.accounts.tests.factories import CustomerFactory, UserFactory
from dunning_site.notifications.models import Message

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.7 a letter"


@pytest.fixture
def letter(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    message = Message.objects.create(
        customer=CustomerFactory(), channel="letter", body="Dear customer", idempotency_key="letter-download"
    )
    message.letter.save("letter.pdf", ContentFile(PDF))
    return f"/messages/{message.pk}/letter.pdf"


def test_a_viewer_downloads_the_letter(client, letter):
    viewer = UserFactory(username="vera")
    viewer.groups.add(Group.objects.get(name="Viewer"))
    client.force_login(viewer)
    response = client.get(letter)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF


def test_staff_status_alone_does_not_download_letters(client, letter):
    client.force_login(UserFactory(username="temp", is_staff=True))
    assert client.get(letter).status_code == 403


def test_visitors_are_sent_to_sign_in(client, letter):
    response = client.get(letter)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
