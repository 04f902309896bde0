"""A collector's actions on the case page: one small POST-only view per action.

Each answers a plain form post with a redirect to the case page and a flash message, and an htmx
post with the case page's main section re-rendered (the same `case-main` partial the page shows),
so the status line, the next step, the messages and the timeline all show the change. An invalid
form is re-rendered with its errors next to the fields and a 400.
"""

import datetime as dt
import zoneinfo

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from dunning_site.accounts import services as account_services
from dunning_site.accounts.models import Channel, Invoice
from dunning_site.collections import calls, case_core, ladder, promises, selectors
from dunning_site.collections.context import message_context
from dunning_site.collections.forms import (
    AssignForm,
    CallOutcomeForm,
    DraftEditForm,
    ManualPaymentForm,
    NoteForm,
    PauseForm,
    PlanOfferForm,
    StepNowForm,
)
from dunning_site.collections.models import Case, Promise, Step
from dunning_site.lib import dates
from dunning_site.lib.money import format_money
from dunning_site.notifications import selectors as notification_selectors
from dunning_site.notifications import services as notification_services
from dunning_site.notifications.models import Message
from dunning_site.notifications.rendering import one_line, render_html, render_text, template_errors

CASE_PAGE = "collections/case_detail.html"
MESSAGE_PAGE = "collections/message_edit.html"
WORK = "collections.work_case"
NOT_A_DRAFT = "This message is %(status)s: only drafts can be personalized."
CANNOT_RENDER = "This cannot be rendered: %(error)s"
SUBJECT_TOO_LONG = (
    "Written out for this customer the subject has %(length)d characters; a subject can have at most %(max_length)d."
)
# What becomes of a message once released, as the contact rules decide it (the ends of sentences
# that begin "Sent to the outbox: it …", "Day 10: Reminder (Email): the email …").
GOES_NOW = "goes out now."
HELD = "is held by the contact rules until %(yours)s your time (%(theirs)s for the customer)"
WILL_NOT_GO = "will not go: %(reason)s"
# Fields of the case page's forms that a service names differently in its errors.
SERVICE_FIELDS = {"paused_until": "until", "promised_on": "promised_on", "amount": "amount"}


# ---------------------------------------------------------------------------------------------
# The case page's context and answers


def _step_draft_waiting(case: Case) -> Message | None:
    """The last step's message, when it still waits as a draft: the ladder waits for it (from the
    prefetched messages, by the step's idempotency key: no query)."""
    key = f"case:{case.pk}:step:{case.current_step_id}:attempt:1"
    drafts = (m for m in case.messages.all() if m.status == Message.Status.DRAFT and m.idempotency_key == key)
    return next(drafts, None)


def case_page_context(request: HttpRequest, case: Case, **bound: Form) -> dict:
    """What the case page shows; for people who work cases also the action forms (blank, or the
    bound one being corrected). Lists come from the case's prefetched rows: no query per row."""
    open_invoices = [invoice for invoice in case.invoices.all() if invoice.status == Invoice.Status.OPEN]
    context = {
        "case": case,
        "customer_now": timezone.now(),  # shown in the customer's zone by the template
        "today": timezone.localdate(),
        "open_invoices": open_invoices,
        "timeline": _timeline(case),
        "draft_waiting": _step_draft_waiting(case),
        "customer_requests": list(case.customer_requests.all()),
        "plans": list(case.plans.all()),  # prefetched with their instalments, newest first
    }
    context["current_plan"] = next((plan for plan in context["plans"] if plan.is_current), None)
    if not request.user.has_perm(WORK):
        return context
    case_messages = list(case.messages.all())
    calls_to_make = [
        message
        for message in case_messages
        if message.channel == Channel.CALL
        and message.status not in (Message.Status.DRAFT, Message.Status.CANCELLED)
        and not message.call_outcome
    ]
    call_forms = bound.get("call_forms", {})
    context |= {
        "drafts": [message for message in case_messages if message.status == Message.Status.DRAFT],
        "calls": [
            (call, call_forms.get(call.pk) or CallOutcomeForm(case=case, auto_id=f"call-{call.pk}-%s"))
            for call in calls_to_make
        ],
        "can_personalize": bool(case.next_step)
        and case.next_step.action in (Step.Action.REMINDER, Step.Action.FINAL_NOTICE),
        "pause_form": bound.get("pause_form") or PauseForm(case=case, auto_id="pause-%s"),
        "assign_form": bound.get("assign_form")
        or AssignForm(initial={"assignee": case.assignee_id}, auto_id="assign-%s"),
        "note_form": bound.get("note_form") or NoteForm(auto_id="note-%s"),
        "payment_form": bound.get("payment_form")
        or ManualPaymentForm(invoices=open_invoices, currency=case.currency, auto_id="payment-%s"),
        "plan_form": bound.get("plan_form") or PlanOfferForm(case=case, auto_id="plan-%s"),
    }
    return context


def _timeline(case: Case) -> list[tuple]:
    """The events, newest first, each with the message it concerns — shown once, on its newest
    event, so the timeline reads what the customer got without repeating it for every status."""
    messages_by_id = {message.pk: message for message in case.messages.all()}
    shown, timeline = set(), []
    for event in case.events.all():
        message = messages_by_id.get(event.data.get("message_id"))
        if message is not None and message.pk in shown:
            message = None
        elif message is not None:
            shown.add(message.pk)
        timeline.append((event, message))
    return timeline


def _case(case_id: int) -> Case:
    try:
        return selectors.case_detail(case_id=case_id)
    except Case.DoesNotExist:
        raise Http404("No such case.") from None


def _done(request: HttpRequest, case_id: int, text: str, level: int = messages.SUCCESS) -> HttpResponse:
    """After an action: the case page again, showing what changed and saying what was done."""
    messages.add_message(request, level, text)
    if request.htmx:
        status = 409 if level == messages.ERROR else 200
        return render(request, f"{CASE_PAGE}#case-main", case_page_context(request, _case(case_id)), status=status)
    return redirect("collections:case_detail", case_id=case_id)


def _invalid(request: HttpRequest, case_id: int, **bound: Form) -> HttpResponse:
    template = f"{CASE_PAGE}#case-main" if request.htmx else CASE_PAGE
    return render(request, template, case_page_context(request, _case(case_id), **bound), status=400)


def _service_errors(form: Form, error: ValidationError) -> None:
    """A service's refusal, shown on the field it concerns (or above the form)."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for name, problems in error.error_dict.items():
        field = SERVICE_FIELDS.get(name, name)
        form.add_error(field if field in form.fields else None, problems)


def _refused(error: ValidationError) -> str:
    return " ".join(error.messages)


def _outlook(case: Case, message: Message, at: dt.datetime | None = None) -> tuple[int, str]:
    """What the delivery will do with a message just released for `at` (now by default), decided
    by the same contact rules, and how loudly to say it: a collector who reads "it goes out now"
    must be able to tell the customer so."""
    decision = notification_selectors.message_outlook(message_id=message.pk, at=at)
    if decision.send:
        return messages.SUCCESS, GOES_NOW
    if decision.cancel:
        return messages.WARNING, WILL_NOT_GO % {"reason": decision.reason}
    until = decision.defer_until
    held = HELD % {
        "yours": dates.moment(until),
        "theirs": dates.moment(until, zoneinfo.ZoneInfo(case.customer.time_zone)),
    }
    return messages.WARNING, f"{held}: {decision.reason}" if decision.reason else f"{held}."


# ---------------------------------------------------------------------------------------------
# The next step, now


def _perform_next_step(request: HttpRequest, case_id: int, *, draft: bool) -> tuple[Case, Message | None]:
    case = get_object_or_404(Case, pk=case_id)
    form = StepNowForm(request.POST)
    step = Step.objects.filter(pk=form.cleaned_data["step"]).first() if form.is_valid() else None
    if step is None:
        raise ValidationError(ladder.STEP_ALREADY_PERFORMED)
    message = ladder.case_step_perform_now(case=case, step=step, user=request.user, draft=draft)
    case.refresh_from_db(fields=["status"])
    return case, message


def _step_outcome(case: Case, step_label: str, message: Message | None) -> tuple[int, str]:
    if case.status == Case.Status.AWAITING_APPROVAL:
        return messages.SUCCESS, f"{step_label} needs a manager's approval: it is now waiting for one."
    if message is None:
        return messages.SUCCESS, f"Done: {step_label}."
    if message.status == Message.Status.DRAFT:
        return messages.SUCCESS, f"{step_label}: written as a draft. Personalize it, then send it."
    if message.channel == Channel.CALL:
        return messages.SUCCESS, f"{step_label}: the call is on the list of calls to make."
    level, what_happens = _outlook(case, message)
    return level, f"{step_label}: the {message.get_channel_display().lower()} {what_happens}"


@login_required
@permission_required(WORK, raise_exception=True)
@require_POST
def case_step_now(request: HttpRequest, case_id: int) -> HttpResponse:
    """Perform the next step at once instead of waiting for its day (once, even if clicked twice)."""
    step_label = str(get_object_or_404(Case.objects.select_related("next_step"), pk=case_id).next_step or "")
    try:
        case, message = _perform_next_step(request, case_id, draft=False)
    except ValidationError as error:
        return _done(request, case_id, _refused(error), messages.ERROR)
    level, text = _step_outcome(case, step_label, message)
    return _done(request, case_id, text, level)


@login_required
@permission_required(WORK, raise_exception=True)
@require_POST
def case_step_personalize(request: HttpRequest, case_id: int) -> HttpResponse:
    """Write the next step's message now as a draft and open it for editing."""
    step_label = str(get_object_or_404(Case.objects.select_related("next_step"), pk=case_id).next_step or "")
    try:
        case, message = _perform_next_step(request, case_id, draft=True)
    except ValidationError as error:
        return _done(request, case_id, _refused(error), messages.ERROR)
    if message is None or message.status != Message.Status.DRAFT:
        return _done(request, case_id, _step_outcome(case, step_label, message)[1], messages.WARNING)
    url = reverse("collections:message_edit", args=[case_id, message.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


# ---------------------------------------------------------------------------------------------
# Personalizing a draft, with a live preview


def _draft_of(case_id: int, message_id: int) -> tuple[Case, Message]:
    case = get_object_or_404(
        Case.objects.select_related("customer", "policy__contact_rules").prefetch_related("invoices"), pk=case_id
    )
    message = get_object_or_404(Message.objects.select_related("template"), pk=message_id, cases=case)
    return case, message


def _draft_form(request: HttpRequest, case: Case, message: Message, data=None) -> DraftEditForm:
    with_html = bool(message.html_body.strip() or (message.template and message.template.html_body.strip()))
    form = DraftEditForm(
        data,
        with_html=with_html and message.channel == Channel.EMAIL,
        with_subject=message.channel in (Channel.EMAIL, Channel.LETTER, Channel.CALL),
        initial={"subject": message.subject, "body": message.body, "html_body": message.html_body},
        auto_id="draft-%s",
    )
    preview = reverse("collections:message_preview", args=[case.pk, message.pk])
    for name, field in form.fields.items():
        if name != "send":
            field.widget.attrs |= {
                "hx-post": preview,
                "hx-trigger": "input changed delay:400ms, change",
                "hx-target": "#preview",
                "hx-swap": "outerHTML",
                "hx-include": "closest form",
            }
    return form


def _personalized(request: HttpRequest, case: Case, message: Message, *, subject: str, body: str, html: str) -> dict:
    """The words as the customer will get them; `errors` by field when they cannot be rendered."""
    errors = template_errors(subject=subject, body=body, html_body=html)
    if errors:
        return {"errors": errors}
    rules = case.policy.contact_rules
    context = message_context(
        customer=case.customer,
        currency=case.currency,
        invoices=[invoice for invoice in case.invoices.all() if invoice.status == Invoice.Status.OPEN],
        today=timezone.now().date(),
        collector=request.user,
        discreet=message.channel == Channel.SMS and bool(rules and rules.discreet_sms),
        payment_problem=case.payment_problem,
    )
    try:
        rendered = {
            "subject": one_line(render_text(subject, context)),
            "body": render_text(body, context).strip() + "\n",
            "html": render_html(html, context).strip() if html.strip() else "",
        }
    except Exception as error:  # a filter given a value it cannot take fails only when rendering
        return {"errors": {"body": [CANNOT_RENDER % {"error": error}]}}
    # The form checks the subject as typed; a loop or a long name can make it longer once written out.
    max_length = Message._meta.get_field("subject").max_length
    if len(rendered["subject"]) > max_length:
        return {
            "errors": {"subject": [SUBJECT_TOO_LONG % {"length": len(rendered["subject"]), "max_length": max_length}]}
        }
    if message.channel == Channel.SMS:
        from dunning_site.notifications.sms import fit_sms

        rendered["body"] = fit_sms(" ".join(rendered["body"].split()))
    return rendered


def _edit_context(request: HttpRequest, case: Case, message: Message, form: DraftEditForm, preview: dict) -> dict:
    return {
        "case": case,
        "message": message,
        "form": form,
        "preview": preview,
        "customer_now": timezone.now(),
        "labels": {"subject": "Subject", "body": "Message", "html_body": "HTML version"},
    }


@login_required
@permission_required(WORK, raise_exception=True)
def message_edit(request: HttpRequest, case_id: int, message_id: int) -> HttpResponse:
    """Edit a draft of the case, then send it now, schedule it, or keep it as a draft."""
    case, message = _draft_of(case_id, message_id)
    if message.status != Message.Status.DRAFT:
        messages.error(request, NOT_A_DRAFT % {"status": message.get_status_display().lower()})
        url = reverse("collections:case_detail", args=[case_id])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    if request.method != "POST":
        form = _draft_form(request, case, message)
        preview = {"subject": message.subject, "body": message.body, "html": message.html_body}
        return render(request, MESSAGE_PAGE, _edit_context(request, case, message, form, preview))
    form = _draft_form(request, case, message, request.POST)
    words = {}
    if form.is_valid():
        words = _personalized(
            request,
            case,
            message,
            subject=form.cleaned_data.get("subject", ""),
            body=form.cleaned_data["body"],
            html=form.cleaned_data.get("html_body", ""),
        )
        for field, problems in words.get("errors", {}).items():
            form.add_error(field if field in form.fields else None, problems)
    if form.is_valid():
        send = form.cleaned_data["send"] or DraftEditForm.SAVE
        try:
            with transaction.atomic():
                notification_services.message_edit(
                    message=message,
                    subject=words["subject"],
                    body=words["body"],
                    html_body=words["html"] if "html_body" in form.fields else None,
                    user=request.user,
                )
                if send != DraftEditForm.SAVE:
                    at = form.cleaned_data["send_at"] if send == DraftEditForm.LATER else None
                    notification_services.message_release(message=message, user=request.user, send_at=at)
        except ValidationError as error:
            _service_errors(form, error)
        else:
            if send == DraftEditForm.NOW:
                level, what_happens = _outlook(case, message)
                messages.add_message(request, level, f"Sent to the outbox: it {what_happens}")
            elif send == DraftEditForm.LATER:
                when = form.cleaned_data["send_at"]
                yours = dates.moment(when)
                theirs = dates.moment(when, zoneinfo.ZoneInfo(case.customer.time_zone))
                scheduled = f"Scheduled for {yours} your time ({theirs} for the customer)."
                level, what_happens = _outlook(case, message, at=when)
                if level != messages.SUCCESS:
                    scheduled += f" Then it {what_happens}"
                messages.add_message(request, level, scheduled)
            else:
                messages.success(request, "Draft saved.")
            url = reverse("collections:case_detail", args=[case_id])
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    preview = words if words and "errors" not in words else {"errors": form.errors}
    context = _edit_context(request, case, message, form, preview)
    template = f"{MESSAGE_PAGE}#edit-form" if request.htmx else MESSAGE_PAGE
    return render(request, template, context, status=400)


@login_required
@permission_required(WORK, raise_exception=True)
@require_POST
def message_preview(request: HttpRequest, case_id: int, message_id: int) -> HttpResponse:
    """The draft as typed so far, rendered for this customer; nothing is saved."""
    case, message = _draft_of(case_id, message_id)
    form = _draft_form(request, case, message, request.POST)
    form.is_valid()  # for send_at; the words are checked below, field by field
    preview = _personalized(
        request,
        case,
        message,
        subject=request.POST.get("subject", "") if "subject" in form.fields else "",
        body=request.POST.get("body", ""),
        html=request.POST.get("html_body", "") if "html_body" in form.fields else "",
    )
    if form.cleaned_data.get("send_at"):
        preview["send_at"] = form.cleaned_data["send_at"]
    context = _edit_context(request, case, message, form, preview)
    return render(request, f"{MESSAGE_PAGE}#preview", context)


# ---------------------------------------------------------------------------------------------
# Pause, resume, assign, note


@login_required
@permission_required(WORK, raise_exception=True)
@require_POST
def case_pause(request: HttpRequest, case_id: int) -> HttpResponse:
    case = get_object_or_404(Case.objects.select_related("policy"), pk=case_id)
    form = PauseForm(request.POST, case=case, auto_id="pause-%s")
    if form.is_valid():
        data = form.cleaned_data
        try:
            if data["kind"] == PauseForm.PROMISE:
                promise = promises.promise_record(
                    case=case,
                    promised_on=data["promised_on"],
                    amount=data["promised_minor"],
                    source=Promise.Source.CASE_PAGE,
                    reason=data["reason"],
                    user=request.user,
                )
                case = promise.case
            else:
                until, reason = form.pause()
                case = case_core.case_pause(
                    case=case,
                    until=until,
                    reason=reason,
                    user=request.user,
                    replace_hold=data["kind"] == PauseForm.DISPUTE,
                )
        except ValidationError as error:
            _service_errors(form, error)
        else:
            return _done(request, case_id, f"On hold: {dates.days_in_words(case.pause_reason)}.")
    return _invalid(request, case_id, pause_form=form)


@login_required
@permission_required(WORK, raise_exception=True)
@require_POST
def case_resume(request: HttpRequest, case_id: int) -> HttpResponse:
    case = get_object_or_404(Case, pk=case_id)
    try:
        case_core.case_resume(case=case, user=request.user)
    except ValidationError as error:
        return _done(request, case_id, _refused(error), messages.ERROR)
    return _done(request, case_id, "Resumed: the ladder goes on.")


@login_required
@permission_required(WORK, raise_exception=True)
@require_POST
def case_assign(request: HttpRequest, case_id: int) -> HttpResponse:
    case = get_object_or_404(Case, pk=case_id)
    form = AssignForm(request.POST, auto_id="assign-%s")
    if not form.is_valid():
        return _invalid(request, case_id, assign_form=form)
    assignee = form.cleaned_data["assignee"]
    case_core.case_assign(case=case, assignee=assignee, user=request.user)
    who = (assignee.get_full_name() or assignee.get_username()) if assignee else "nobody"
    return _done(request, case_id, f"Assigned to {who}.")


@login_required
@permission_required(WORK, raise_exception=True)
@require_POST
def case_note_add(request: HttpRequest, case_id: int) -> HttpResponse:
    case = get_object_or_404(Case, pk=case_id)
    form = NoteForm(request.POST, auto_id="note-%s")
    if form.is_valid():
        try:
            case_core.case_note_add(case=case, text=form.cleaned_data["text"], user=request.user)
        except ValidationError as error:
            _service_errors(form, error)
        else:
            return _done(request, case_id, "Note added to the timeline.")
    return _invalid(request, case_id, note_form=form)


# ---------------------------------------------------------------------------------------------
# A call's outcome, a payment received


@login_required
@permission_required(WORK, raise_exception=True)
@require_POST
def call_outcome(request: HttpRequest, case_id: int, message_id: int) -> HttpResponse:
    case = get_object_or_404(Case.objects.select_related("policy"), pk=case_id)
    call = get_object_or_404(Message, pk=message_id, cases=case, channel=Channel.CALL)
    form = CallOutcomeForm(request.POST, case=case, auto_id=f"call-{call.pk}-%s")
    if form.is_valid():
        try:
            calls.call_outcome_record(
                message=call,
                outcome=form.cleaned_data["outcome"],
                user=request.user,
                note=form.cleaned_data["note"],
                promised_on=form.cleaned_data["promised_on"],
                promised_amount=form.cleaned_data["promised_minor"],
            )
        except ValidationError as error:
            _service_errors(form, error)
        else:
            label = Message.CallOutcome(form.cleaned_data["outcome"]).label
            return _done(request, case_id, f"Call logged: {label}.")
    return _invalid(request, case_id, call_forms={call.pk: form})


@login_required
@permission_required(WORK, raise_exception=True)
@require_POST
def case_payment_record(request: HttpRequest, case_id: int) -> HttpResponse:
    """Money received outside the billing system: recorded on the invoice like the admin does, which
    reconciles the case and tells Stripe the invoice was paid out of band (a part payment of an invoice
    Stripe collects is refused: Stripe would charge the whole invoice anyway)."""
    case = get_object_or_404(Case, pk=case_id)
    open_invoices = list(case.invoices.filter(status=Invoice.Status.OPEN).order_by("due_on"))
    form = ManualPaymentForm(request.POST, invoices=open_invoices, currency=case.currency, auto_id="payment-%s")
    if form.is_valid():
        invoice = form.cleaned_data["invoice_object"]
        try:
            account_services.payment_record(
                invoice=invoice,
                amount=form.cleaned_data["minor"],
                method=form.cleaned_data["method"],
                at=form.received_at(),
                reference=form.cleaned_data["reference"],
                recorded_by=request.user,
            )
        except ValidationError as error:
            _service_errors(form, error)
        else:
            amount = format_money(form.cleaned_data["minor"], case.currency)
            return _done(request, case_id, f"Payment of {amount} recorded on invoice {invoice.number}.")
    return _invalid(request, case_id, payment_form=form)
