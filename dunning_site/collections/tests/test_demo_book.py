"""The plan of the demo book (collections.demo_book): plain data, the same for the same seed and date.

Writing it and replaying its history is test_seed_demo.py's.
"""

import datetime as dt

import phonenumbers

from dunning_site.collections import demo_book

# The same afternoon as test_seed_demo.py's, so both files plan the book the seed_demo test writes.
NOW = dt.datetime(2026, 3, 16, 20, 0, tzinfo=dt.UTC)


def test_the_plan_depends_only_on_the_seed_and_the_date():
    today = NOW.date()
    book = demo_book.build_book(seed=7, today=today)
    assert book == demo_book.build_book(seed=7, today=today)
    assert book.digest() != demo_book.build_book(seed=8, today=today).digest()
    assert book.digest() != demo_book.build_book(seed=7, today=today + dt.timedelta(days=1)).digest()


def test_planned_customers_have_valid_phones_unique_emails_and_local_time_zones():
    book = demo_book.build_book(seed=7, today=NOW.date())
    assert len({customer.email for customer in book.customers}) == len(book.customers)
    zones = {country.currency: set() for country in demo_book.COUNTRIES}
    for country in demo_book.COUNTRIES:
        zones[country.currency] |= set(country.zones)
    for customer in book.customers:
        assert customer.time_zone in zones[customer.currency]
        if customer.phone:
            number = phonenumbers.parse(customer.phone)
            assert phonenumbers.is_valid_number(number), customer.phone
            assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == customer.phone
    assert {customer.language for customer in book.customers} == {"en", "fr", "de", "es", "ja"}
    assert {customer.segment for customer in book.customers} == {"self-serve", "smb", "enterprise"}
