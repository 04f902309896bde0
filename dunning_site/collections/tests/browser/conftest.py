"""Browser tests: pytest-playwright driving Debian's Chromium against `live_server`.

`make test` installs /usr/bin/chromium when it is missing. Playwright's sync API runs an event loop
in the test's thread, so the ORM calls made there need Django's async-safety check switched off.
Each test saves a screenshot under its output folder (test-results/<test>/).

The server's clock starts on the finance UI tests' Monday morning and runs on (the browser needs
time to pass), so messages are inside every customer's contact hours whatever day the suite runs.
"""

import os
from pathlib import Path

import pytest
import time_machine
from django.contrib.auth.models import Group

from dunning_site.accounts.tests.factories import UserFactory
from dunning_site.collections.tests.views.moment import NOW

# Once Playwright has started, its loop counts as running in this thread for the rest of the session
# (tests after the browser tests, and the test database's teardown, included), so the switch cannot
# be limited to these tests. Commands the tests start get an environment without it.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "a-long-browser-test-password"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium).")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture
def screenshot(page, output_path):
    """Save what the page shows now as <output folder>/<name>.png."""

    def save(name: str) -> Path:
        path = Path(output_path) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


def htmx_ready(page) -> None:
    """Wait until the page has loaded and htmx has taken it over. Playwright acts as soon as an element
    shows, which can be before the deferred scripts have run; typed then, an input triggers nothing."""
    page.wait_for_function("() => document.readyState === 'complete' && window.htmx !== undefined")


def staff(role: str, username: str, **fields):
    user = UserFactory(username=username, **fields)
    user.set_password(PASSWORD)
    user.save()
    user.groups.add(Group.objects.get(name=role))
    return user


def sign_in(page, live_server, user) -> None:
    page.goto(f"{live_server.url}/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/")
