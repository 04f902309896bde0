"""`make run`'s environment: links in messages lead to where the server listens."""

from dunning_site.devserver import run_environment


def test_links_follow_the_run_address():
    env = run_environment({"RUN_ADDRESS": "127.0.0.1:9123"})
    assert env["SITE_URL"] == "http://127.0.0.1:9123"


def test_an_explicit_site_url_wins():
    env = run_environment({"RUN_ADDRESS": "0.0.0.0:8000", "SITE_URL": "https://dunning.example.com"})
    assert env["SITE_URL"] == "https://dunning.example.com"


def test_the_default_address():
    assert run_environment({})["SITE_URL"] == "http://127.0.0.1:8000"
