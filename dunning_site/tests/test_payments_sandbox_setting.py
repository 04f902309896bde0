"""PAYMENTS_SANDBOX follows DEBUG unless set: `make run` shows simulated payments, production never
does unless someone asks for it by name (and `check --deploy` then says dunning.E001)."""

from dunning_site.tests.test_settings import PRODUCTION, show


def test_the_sandbox_is_off_in_production_and_on_in_development():
    assert show("PAYMENTS_SANDBOX", **PRODUCTION) == "False"
    assert show("PAYMENTS_SANDBOX", DEBUG="true") == "True"


def test_the_sandbox_can_be_asked_for_or_refused_by_name():
    assert show("PAYMENTS_SANDBOX", **PRODUCTION, PAYMENTS_SANDBOX="true") == "True"
    assert show("PAYMENTS_SANDBOX", DEBUG="true", PAYMENTS_SANDBOX="false") == "False"
