"""The finance UI's tests: a fixed Monday morning, and staff signed in with one role each."""

import pytest
import time_machine
from django.contrib.auth.models import Group

from dunning_site.accounts.tests.factories import UserFactory
from dunning_site.collections.roles import COLLECTOR, MANAGER, VIEWER
from dunning_site.collections.tests.views.moment import NOW


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def signed_in(client, role: str, username: str, **fields):
    user = UserFactory(username=username, **fields)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


@pytest.fixture
def viewer(client):
    return signed_in(client, VIEWER, "vera")


@pytest.fixture
def collector(client):
    return signed_in(client, COLLECTOR, "grace")


@pytest.fixture
def manager(client):
    return signed_in(client, MANAGER, "maria", first_name="Maria")
