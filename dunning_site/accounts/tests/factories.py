import datetime as dt

import factory

from dunning_site.accounts.models import Customer, Invoice, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Sequence(lambda n: f"Customer {n}")
    company = factory.Sequence(lambda n: f"Company {n} Ltd")
    email = factory.Sequence(lambda n: f"billing{n}@customer.example")
    time_zone = "Europe/Paris"
    language = "en"
    segment = "standard"


class InvoiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invoice

    customer = factory.SubFactory(CustomerFactory)
    number = factory.Sequence(lambda n: f"INV-{n:05d}")
    currency = "EUR"
    total = 10_000
    issued_on = factory.LazyAttribute(lambda invoice: invoice.due_on - dt.timedelta(days=14))
    due_on = dt.date(2026, 1, 5)
