"""The message templates: everyone reads them and previews them on a real customer; managers edit them.

The preview renders what is typed, unsaved, for the chosen customer: live through htmx as the
manager types, or with the "Preview" button without JavaScript. Nothing is written until "Save".
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from dunning_site.collections import selectors
from dunning_site.collections.context import DISCREET_SMS_KEYS
from dunning_site.collections.policy_forms import MessageTemplateFilterForm, MessageTemplateForm
from dunning_site.notifications import services as notification_services
from dunning_site.notifications.models import MessageTemplate
from dunning_site.notifications.rendering import CONTEXT_VARIABLES, template_errors, template_warnings

SAVED = "Template “%(template)s” saved."
NOT_SAVED = "Nothing was saved: correct the fields marked below."
TEMPLATE_PAGE = "collections/message_template_detail.html"


@login_required
@permission_required("notifications.view_messagetemplate", raise_exception=True)
def message_template_list(request: HttpRequest) -> HttpResponse:
    languages = list(MessageTemplate.objects.order_by("language").values_list("language", flat=True).distinct())
    filters = MessageTemplateFilterForm(request.GET, languages=languages)
    wanted = filters.cleaned_data if filters.is_valid() else {}
    templates = selectors.message_templates_for_list(key=wanted.get("key", ""), language=wanted.get("language", ""))
    return render(request, "collections/message_template_list.html", {"filters": filters, "templates": templates})


@login_required
@permission_required("notifications.add_messagetemplate", raise_exception=True)
def message_template_new(request: HttpRequest) -> HttpResponse:
    return _edit(request, MessageTemplate())


@login_required
@permission_required("notifications.view_messagetemplate", raise_exception=True)
def message_template_detail(request: HttpRequest, template_id: int) -> HttpResponse:
    template = get_object_or_404(MessageTemplate, pk=template_id)
    if request.user.has_perm("notifications.change_messagetemplate"):
        return _edit(request, template)
    if request.method != "GET":
        raise PermissionDenied
    context = {"template": template, "title": str(template), "variables": CONTEXT_VARIABLES}
    context["discreet_sms_variables"] = sorted(DISCREET_SMS_KEYS)
    context |= _preview(template, request.GET.get("preview_customer"))
    return render(request, TEMPLATE_PAGE, context)


@login_required
@permission_required("notifications.change_messagetemplate", raise_exception=True)
@require_POST
def message_template_preview(request: HttpRequest) -> HttpResponse:
    """The preview alone (htmx swaps it into the page), rendered from the unsaved fields."""
    context = _preview(_unsaved(request.POST), request.POST.get("preview_customer"))
    return render(request, f"{TEMPLATE_PAGE}#preview", context)


def _edit(request: HttpRequest, template: MessageTemplate) -> HttpResponse:
    title = str(template) if template.pk else "New message template"
    data = request.POST if request.method == "POST" else None
    form = MessageTemplateForm(data, instance=template)
    status = 200
    if data is not None and "preview" not in data:
        if form.is_valid():
            try:
                saved = notification_services.message_template_save(form=form, user=request.user)
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, SAVED % {"template": saved})
                for warning in template_warnings(subject=saved.subject, body=saved.body, html_body=saved.html_body):
                    messages.warning(request, warning)
                return redirect("collections:message_template_detail", template_id=saved.pk)
        messages.error(request, NOT_SAVED)
        status = 400
    elif data is not None:
        form.is_valid()  # "Preview" without JavaScript: show the errors too, save nothing
    shown = _unsaved(data) if data is not None else template
    customer_id = (data or request.GET).get("preview_customer")
    context = {"template": template, "title": title, "form": form, "variables": CONTEXT_VARIABLES}
    context["discreet_sms_variables"] = sorted(DISCREET_SMS_KEYS)
    context |= _preview(shown, customer_id)
    return render(request, TEMPLATE_PAGE, context, status=status)


def _unsaved(data: QueryDict) -> MessageTemplate:
    """What the editor holds right now, as a template that is never saved."""
    return MessageTemplate(
        subject=data.get("subject", ""), body=data.get("body", ""), html_body=data.get("html_body", "")
    )


def _preview(template: MessageTemplate, customer_id: str | None) -> dict:
    errors = template_errors(subject=template.subject, body=template.body, html_body=template.html_body)
    labels = {"subject": "Subject", "body": "Body", "html_body": "HTML body"}
    problems = [f"{labels[field]}: {problem}" for field, found in errors.items() for problem in found]
    return selectors.template_preview(template, customer_id) | {"preview_errors": problems}
