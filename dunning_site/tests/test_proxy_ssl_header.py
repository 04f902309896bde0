"""X-Forwarded-Proto is believed only when SECURE_PROXY_SSL_HEADER says so: a client talking to the
app directly could otherwise claim https (and get "secure" cookies and no redirect over plain HTTP)."""

import pytest

from dunning_site.tests.test_settings import PRODUCTION, manage, show


def test_the_proxy_header_is_not_trusted_by_default():
    assert show("SECURE_PROXY_SSL_HEADER", **PRODUCTION) == "None"


def test_the_proxy_header_is_a_setting():
    shown = show("SECURE_PROXY_SSL_HEADER", **PRODUCTION, SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https")
    assert shown == "('HTTP_X_FORWARDED_PROTO', 'https')"


def test_a_malformed_proxy_header_stops_the_start_with_a_clear_message():
    result = manage("check", **PRODUCTION, SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO")
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER must be a header and its value, comma-separated" in result.stderr


@pytest.mark.parametrize(("trusted", "status"), [(None, 301), (("HTTP_X_FORWARDED_PROTO", "https"), 200)])
def test_a_client_claiming_https_is_believed_only_when_the_header_is_trusted(client, settings, trusted, status):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = trusted
    response = client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == status
    if status == 301:
        assert response["Location"] == "https://testserver/accounts/login/"
