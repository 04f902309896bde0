import factory

from dunning_site.notifications.models import MessageTemplate


class MessageTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MessageTemplate
        django_get_or_create = ["key", "language"]

    key = factory.Sequence(lambda n: f"template-{n}")
    language = "en"
    subject = "Invoice overdue: {{ total_overdue }}"
    body = (
        "Dear {{ customer_name }},\n"
        "{% for invoice in invoices %}{{ invoice.number }} {{ invoice.amount_due }}\n{% endfor %}"
    )
