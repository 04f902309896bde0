import json
import logging
import re
from typing import Any

import pytest
import requests
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator

from dunning_site.accounts.models import Consent
from dunning_site.accounts.tests.factories import CustomerFactory
from dunning_site.notifications import sms
from dunning_site.notifications.models import DeliveryEvent, InboundSms, Message
from dunning_site.notifications.sms import (
    TWILIO_NO_ANSWER,
    TWILIO_NOT_CONFIGURED,
    LocmemBackend,
    SmsTransport,
    TwilioBackend,
    fit_sms,
    get_backend,
    sms_segments,
)
from dunning_site.notifications.transports import NO_ADDRESS, TransportError, transport_for
from dunning_site.notifications.views import EMPTY_TWIML, INVALID_SIGNATURE, MESSAGE_SID_MISSING

pytestmark = pytest.mark.django_db

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token"
PHONE = "+33612345678"
STATUS_URL = "http://testserver/webhooks/twilio/status/"
INBOUND_URL = "http://testserver/webhooks/twilio/inbound/"


@pytest.fixture(autouse=True)
def _empty_outbox():
    sms.outbox.clear()
    yield
    sms.outbox.clear()


@pytest.fixture
def twilio_settings(settings):
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.TWILIO_FROM_NUMBER = "+15005550006"
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    return settings


def sms_message(**fields: Any) -> Message:
    customer = fields.pop("customer", None) or CustomerFactory(phone=PHONE)
    values = {
        "customer": customer,
        "channel": "sms",
        "to_address": customer.phone,
        "body": "Invoice INV-1 is overdue. Pay at https://pay.example/x",
        "idempotency_key": "case:1:step:1:0",
        "status": Message.Status.SENT,
    }
    return Message.objects.create(**(values | fields))


# ---------------------------------------------------------------------------------------------
# Segments


def test_plain_gsm_text_fits_160_characters_in_one_segment():
    assert sms_segments("") == 1
    assert sms_segments("a" * 160) == 1
    assert sms_segments("a" * 161) == 2


def test_gsm_accents_of_the_default_alphabet_stay_gsm():
    assert sms_segments("é" * 160) == 1
    assert sms_segments("Ç£¥ÄÖÑÜäöñüà" + "x" * 148) == 1


def test_a_long_gsm_text_is_split_every_153_characters():
    assert sms_segments("a" * 306) == 2
    assert sms_segments("a" * 307) == 3
    assert sms_segments("a" * 459) == 3


def test_extension_characters_count_twice():
    assert sms_segments("€" * 80) == 1
    assert sms_segments("€" * 81) == 2
    assert sms_segments("a" * 158 + "[") == 1
    assert sms_segments("a" * 159 + "{") == 2


def test_an_escaped_character_is_not_split_across_segments():
    # 152 septets, then "€" needs 2: it starts the second segment, leaving 1 septet unused.
    assert sms_segments("a" * 152 + "€" + "a" * 151) == 2
    assert sms_segments("a" * 152 + "€" + "a" * 152) == 3


def test_one_character_outside_gsm_makes_the_whole_message_ucs2():
    assert sms_segments("ê" * 70) == 1  # ê is not in GSM-7 (é is)
    assert sms_segments("a" * 69 + "’") == 1
    assert sms_segments("a" * 70 + "’") == 2
    assert sms_segments("a" * 134 + "…") == 3
    assert sms_segments("a" * 133 + "…") == 2


def test_a_long_ucs2_text_is_split_every_67_code_units():
    assert sms_segments("ê" * 134) == 2
    assert sms_segments("ê" * 135) == 3


def test_an_emoji_takes_two_code_units():
    assert sms_segments("🙂" * 35) == 1
    assert sms_segments("🙂" * 36) == 2
    # 66 units, then a surrogate pair that would straddle the boundary starts the next segment.
    assert sms_segments("ê" * 66 + "🙂" + "ê" * 65) == 2
    assert sms_segments("ê" * 66 + "🙂" + "ê" * 66) == 3


# ---------------------------------------------------------------------------------------------
# Fitting


def test_a_text_that_fits_is_left_alone():
    assert fit_sms("  Please pay invoice INV-1.  ") == "Please pay invoice INV-1."


def test_a_long_gsm_text_is_cut_at_a_word_boundary_with_three_dots():
    text = " ".join(["overdue"] * 60)  # 479 characters
    fitted = fit_sms(text)
    assert fitted.endswith("overdue...")
    assert sms_segments(fitted) == 2
    assert len(fitted) > 290
    assert text.startswith(fitted.removesuffix("..."))


def test_a_long_ucs2_text_ends_with_the_ellipsis_character():
    text = " ".join(["rêve"] * 60)
    fitted = fit_sms(text)
    assert fitted.endswith("rêve…")
    assert sms_segments(fitted) == 2
    assert len(fitted) > 120


def test_fitting_keeps_gsm_when_the_kept_part_is_gsm():
    # The non-GSM character is in the part cut away: the result must not pay for UCS-2.
    text = " ".join(["word"] * 80) + " 🙂"
    fitted = fit_sms(text)
    assert fitted.endswith("word...")
    assert len(fitted) > 290


def test_trailing_punctuation_is_dropped_before_the_ellipsis():
    text = "alpha, " * 60
    assert fit_sms(text).endswith("alpha...")


def test_one_segment_can_be_asked_for():
    fitted = fit_sms("x " * 200, max_segments=1)
    assert sms_segments(fitted) == 1
    assert fitted.endswith("x...")


def test_a_single_long_word_is_cut_inside():
    fitted = fit_sms("a" * 1000)
    assert fitted == "a" * 303 + "..."
    assert sms_segments(fitted) == 2


# ---------------------------------------------------------------------------------------------
# Transport and development backends


def test_the_transport_sends_through_the_configured_backend(settings):
    settings.SMS_BACKEND = "dunning_site.notifications.sms.LocmemBackend"
    settings.SITE_URL = "https://dunning.example/"
    message = sms_message()

    provider_id = SmsTransport().send(message)

    (sent,) = sms.outbox
    assert re.fullmatch(r"SM[0-9a-f]{32}", provider_id)
    assert sent.provider_id == provider_id
    assert sent.to == PHONE
    assert sent.body == message.body
    assert sent.idempotency_key == "case:1:step:1:0"
    assert sent.status_callback == "https://dunning.example/webhooks/twilio/status/"


def test_the_transport_shortens_the_body_to_two_segments(settings):
    settings.SMS_BACKEND = "dunning_site.notifications.sms.LocmemBackend"
    SmsTransport().send(sms_message(body="Please pay. " * 100))
    (sent,) = sms.outbox
    assert sms_segments(sent.body) == 2
    assert sent.body.endswith("pay...")


def test_no_status_callback_to_an_address_twilio_cannot_reach(settings):
    settings.SMS_BACKEND = "dunning_site.notifications.sms.LocmemBackend"
    settings.SITE_URL = "http://127.0.0.1:8000"
    SmsTransport().send(sms_message())
    assert sms.outbox[0].status_callback is None


def test_the_transport_refuses_a_message_without_a_number(settings):
    settings.SMS_BACKEND = "dunning_site.notifications.sms.LocmemBackend"
    with pytest.raises(TransportError) as caught:
        SmsTransport().send(sms_message(to_address=""))
    assert caught.value.permanent
    assert str(caught.value) == NO_ADDRESS % {"channel": "sms"}
    assert sms.outbox == []


def test_the_sms_channel_uses_the_sms_transport():
    assert isinstance(transport_for("sms"), SmsTransport)


def test_the_backend_is_chosen_by_the_setting(settings):
    settings.SMS_BACKEND = "dunning_site.notifications.sms.LocmemBackend"
    assert isinstance(get_backend(), LocmemBackend)
    settings.SMS_BACKEND = "dunning_site.notifications.sms.TwilioBackend"
    assert isinstance(get_backend(), TwilioBackend)


def test_the_console_backend_prints_the_sms(settings, capsys):
    settings.SMS_BACKEND = "dunning_site.notifications.sms.ConsoleBackend"
    provider_id = SmsTransport().send(sms_message())
    assert re.fullmatch(r"console-\d+", provider_id)
    printed = capsys.readouterr().out
    assert PHONE in printed
    assert "Invoice INV-1 is overdue." in printed


# ---------------------------------------------------------------------------------------------
# Twilio backend, against a local fake of the API


class FakeTwilioHttp(HttpClient):
    """Answers like api.twilio.com, so the client's request building and parsing really run."""

    def __init__(self, status: int = 201, payload: dict | None = None, error: Exception | None = None) -> None:
        super().__init__(logger=logging.getLogger("twilio.fake"), is_async=False)
        self.status, self.payload, self.error = status, payload, error
        self.requests: list[dict[str, Any]] = []

    def request(
        self,
        method: str,
        uri: str,
        params: dict | None = None,
        data: dict | None = None,
        headers: dict | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        self.requests.append({"method": method, "uri": uri, "data": data, "auth": auth})
        if self.error:
            raise self.error
        payload = self.payload if self.payload is not None else self.message_resource(data or {})
        return Response(self.status, json.dumps(payload))

    @staticmethod
    def message_resource(data: dict) -> dict:
        sid = "SM" + "a" * 32
        return {
            "account_sid": ACCOUNT_SID,
            "api_version": "2010-04-01",
            "body": data.get("Body"),
            "date_created": "Mon, 02 Mar 2026 12:00:00 +0000",
            "date_sent": None,
            "date_updated": "Mon, 02 Mar 2026 12:00:00 +0000",
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": data.get("From"),
            "messaging_service_sid": data.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json"},
            "to": data.get("To"),
            "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
        }


def twilio_send(backend: TwilioBackend, status_callback: str | None = "https://dunning.example/cb/") -> str:
    return backend.send(to=PHONE, body="Please pay", idempotency_key="k1", status_callback=status_callback)


def test_twilio_creates_the_message_and_returns_its_sid(twilio_settings):
    http = FakeTwilioHttp()
    assert twilio_send(TwilioBackend(http_client=http)) == "SM" + "a" * 32
    (request,) = http.requests
    assert request["method"] == "POST"
    assert request["uri"] == f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request["auth"] == (ACCOUNT_SID, AUTH_TOKEN)
    assert request["data"] == {
        "To": PHONE,
        "From": "+15005550006",
        "Body": "Please pay",
        "StatusCallback": "https://dunning.example/cb/",
    }


def test_twilio_sends_through_the_messaging_service_when_there_is_no_number(twilio_settings):
    twilio_settings.TWILIO_FROM_NUMBER = ""
    twilio_settings.TWILIO_MESSAGING_SERVICE_SID = "MG" + "2" * 32
    http = FakeTwilioHttp()
    twilio_send(TwilioBackend(http_client=http), status_callback=None)
    assert http.requests[0]["data"] == {"To": PHONE, "MessagingServiceSid": "MG" + "2" * 32, "Body": "Please pay"}


def test_an_invalid_number_is_a_permanent_failure(twilio_settings):
    error_body = {
        "code": 21211,
        "message": "The 'To' number +33612345678 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }
    with pytest.raises(TransportError) as caught:
        twilio_send(TwilioBackend(http_client=FakeTwilioHttp(400, error_body)))
    assert caught.value.permanent
    assert "21211" in str(caught.value)
    assert "is not a valid phone number" in str(caught.value)


def test_twilio_being_unavailable_is_a_transient_failure(twilio_settings):
    error_body = {"code": 20500, "message": "Service unavailable", "more_info": "", "status": 503}
    with pytest.raises(TransportError) as caught:
        twilio_send(TwilioBackend(http_client=FakeTwilioHttp(503, error_body)))
    assert not caught.value.permanent


def test_rate_limiting_is_a_transient_failure(twilio_settings):
    error_body = {"code": 20429, "message": "Too Many Requests", "more_info": "", "status": 429}
    with pytest.raises(TransportError) as caught:
        twilio_send(TwilioBackend(http_client=FakeTwilioHttp(429, error_body)))
    assert not caught.value.permanent


def test_a_connection_error_is_a_transient_failure(twilio_settings):
    http = FakeTwilioHttp(error=requests.ConnectionError("connection refused"))
    with pytest.raises(TransportError) as caught:
        twilio_send(TwilioBackend(http_client=http))
    assert not caught.value.permanent


def test_no_answer_after_sending_is_not_retried_so_the_customer_is_not_texted_twice(twilio_settings):
    http = FakeTwilioHttp(error=requests.ReadTimeout("read timed out"))
    with pytest.raises(TransportError) as caught:
        twilio_send(TwilioBackend(http_client=http))
    assert caught.value.permanent
    assert str(caught.value) == TWILIO_NO_ANSWER


def test_missing_twilio_settings_hold_the_message_until_fixed(twilio_settings):
    twilio_settings.TWILIO_AUTH_TOKEN = ""
    http = FakeTwilioHttp()
    with pytest.raises(TransportError) as caught:
        twilio_send(TwilioBackend(http_client=http))
    assert not caught.value.permanent
    assert str(caught.value) == TWILIO_NOT_CONFIGURED
    assert http.requests == []


# ---------------------------------------------------------------------------------------------
# Webhooks


def signed_post(client, url: str, params: dict[str, str], token: str = AUTH_TOKEN, signature: str | None = None):
    signature = signature if signature is not None else RequestValidator(token).compute_signature(url, params)
    headers = {"X-Twilio-Signature": signature} if signature else {}
    return client.post(url, params, headers=headers)


def status_params(message: Message, status: str, error_code: str = "") -> dict[str, str]:
    params = {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "From": "+15005550006",
        "MessageSid": message.provider_message_id,
        "MessageStatus": status,
        "SmsSid": message.provider_message_id,
        "SmsStatus": status,
        "To": message.to_address,
    }
    if error_code:
        params["ErrorCode"] = error_code
    return params


def test_a_delivery_report_marks_the_message_delivered(client, twilio_settings):
    message = sms_message(provider_message_id="SM" + "b" * 32)
    response = signed_post(client, STATUS_URL, status_params(message, "delivered"))
    assert response.status_code == 204
    message.refresh_from_db()
    assert message.status == Message.Status.DELIVERED
    assert message.delivered_at is not None
    (event,) = DeliveryEvent.objects.filter(message=message)
    assert event.kind == "delivered"
    assert event.provider_event_id == f"twilio:{message.provider_message_id}:delivered"


def test_a_repeated_report_is_recorded_once(client, twilio_settings):
    message = sms_message(provider_message_id="SM" + "b" * 32)
    for _ in range(2):
        assert signed_post(client, STATUS_URL, status_params(message, "delivered")).status_code == 204
    assert DeliveryEvent.objects.filter(message=message).count() == 1


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("", id="missing"),
        pytest.param("bm90IGEgc2lnbmF0dXJl", id="wrong"),
    ],
)
def test_a_report_without_a_valid_signature_is_refused(client, twilio_settings, signature):
    message = sms_message(provider_message_id="SM" + "b" * 32)
    response = signed_post(client, STATUS_URL, status_params(message, "delivered"), signature=signature)
    assert response.status_code == 403
    assert response.content.decode() == INVALID_SIGNATURE
    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert not DeliveryEvent.objects.exists()


def test_a_report_signed_with_another_token_is_refused(client, twilio_settings):
    message = sms_message(provider_message_id="SM" + "b" * 32)
    response = signed_post(client, STATUS_URL, status_params(message, "delivered"), token="someone-else")
    assert response.status_code == 403
    assert not DeliveryEvent.objects.exists()


def test_without_an_auth_token_every_report_is_refused(client, twilio_settings):
    # Otherwise anyone could sign with the empty key.
    twilio_settings.TWILIO_AUTH_TOKEN = ""
    message = sms_message(provider_message_id="SM" + "b" * 32)
    response = signed_post(client, STATUS_URL, status_params(message, "delivered"), token="")
    assert response.status_code == 403
    assert not DeliveryEvent.objects.exists()


def test_a_report_about_an_unknown_message_is_acknowledged(client, twilio_settings):
    params = {"MessageSid": "SM" + "c" * 32, "MessageStatus": "delivered", "To": PHONE}
    assert signed_post(client, STATUS_URL, params).status_code == 200
    assert not DeliveryEvent.objects.exists()


def test_an_intermediate_status_changes_nothing(client, twilio_settings):
    message = sms_message(provider_message_id="SM" + "b" * 32)
    assert signed_post(client, STATUS_URL, status_params(message, "sent")).status_code == 204
    assert not DeliveryEvent.objects.exists()


def test_an_unknown_number_marks_the_phone_unusable(client, twilio_settings):
    message = sms_message(provider_message_id="SM" + "b" * 32)
    response = signed_post(client, STATUS_URL, status_params(message, "undelivered", error_code="30005"))
    assert response.status_code == 204
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert "30005" in message.error
    (event,) = DeliveryEvent.objects.filter(message=message)
    assert (event.kind, event.data["error_code"]) == ("failed", "30005")
    customer = message.customer
    customer.refresh_from_db()
    assert customer.phone_unusable_since is not None
    assert "30005" in customer.phone_unusable_reason


def test_a_phone_out_of_coverage_stays_usable(client, twilio_settings):
    message = sms_message(provider_message_id="SM" + "b" * 32)
    signed_post(client, STATUS_URL, status_params(message, "undelivered", error_code="30003"))
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    message.customer.refresh_from_db()
    assert message.customer.phone_unusable_since is None


def test_a_number_the_customer_no_longer_has_does_not_spoil_the_new_one(client, twilio_settings):
    message = sms_message(provider_message_id="SM" + "b" * 32, to_address="+33698765432")
    signed_post(client, STATUS_URL, status_params(message, "failed", error_code="21614"))
    message.customer.refresh_from_db()
    assert message.customer.phone == PHONE
    assert message.customer.phone_unusable_since is None


def inbound_params(body: str, sender: str = PHONE, sid: str = "SM" + "d" * 32) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "MessageSid": sid,
        "From": sender,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
    }


def test_stop_revokes_sms_consent_and_start_restores_it(client, twilio_settings):
    customer = CustomerFactory(phone=PHONE)
    other = CustomerFactory(phone="+33698765432")

    response = signed_post(client, INBOUND_URL, inbound_params(" stop "))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml"
    assert response.content.decode() == EMPTY_TWIML
    consent = Consent.objects.get(customer=customer, channel="sms")
    assert (consent.granted, consent.source, consent.note) == (False, Consent.Source.REPLY, "Replied STOP")
    assert not Consent.objects.filter(customer=other).exists()

    signed_post(client, INBOUND_URL, inbound_params("Start", sid="SM" + "e" * 32))
    consent.refresh_from_db()
    assert (consent.granted, consent.source, consent.note) == (True, Consent.Source.REPLY, "Replied START")


@pytest.mark.parametrize("word", ["STOPALL", "unsubscribe", "Cancel", "END", "quit", "OPTOUT", "REVOKE", "arret"])
def test_every_opt_out_keyword_revokes_consent(client, twilio_settings, word):
    customer = CustomerFactory(phone=PHONE)
    signed_post(client, INBOUND_URL, inbound_params(word))
    assert Consent.objects.get(customer=customer, channel="sms").granted is False


def test_an_ordinary_reply_changes_no_consent(client, twilio_settings):
    CustomerFactory(phone=PHONE)
    response = signed_post(client, INBOUND_URL, inbound_params("Please stop texting me at work"))
    assert response.status_code == 200
    assert not Consent.objects.exists()


def test_an_unsigned_stop_is_refused(client, twilio_settings):
    CustomerFactory(phone=PHONE)
    response = signed_post(client, INBOUND_URL, inbound_params("STOP"), signature="")
    assert response.status_code == 403
    assert not Consent.objects.exists()
    assert not InboundSms.objects.exists()


def test_a_captured_start_posted_again_after_a_stop_changes_nothing(client, twilio_settings):
    """Twilio's signature carries no time: whoever captured a signed START could replay it to undo a
    later STOP. Each reply is recorded once under its MessageSid; the replay finds it and is ignored."""
    customer = CustomerFactory(phone=PHONE)
    start = inbound_params("START", sid="SM" + "1" * 32)
    stop = inbound_params("STOP", sid="SM" + "2" * 32)
    for params in (start, stop, start):
        response = signed_post(client, INBOUND_URL, params)
        assert response.status_code == 200
        assert response.content.decode() == EMPTY_TWIML
    consent = Consent.objects.get(customer=customer, channel="sms")
    assert (consent.granted, consent.note) == (False, "Replied STOP")
    assert list(InboundSms.objects.order_by("pk").values_list("provider_id", "keyword", "effect")) == [
        ("SM" + "1" * 32, "START", "opted_in"),
        ("SM" + "2" * 32, "STOP", "opted_out"),
    ]


def test_every_reply_is_recorded_once_keyword_or_not(client, twilio_settings):
    CustomerFactory(phone=PHONE)
    signed_post(client, INBOUND_URL, inbound_params("I will pay on Friday", sid="SM" + "3" * 32))
    signed_post(client, INBOUND_URL, inbound_params(" yes ", sender="+33698765432", sid="SM" + "4" * 32))
    signed_post(client, INBOUND_URL, inbound_params(" yes ", sender="+33698765432", sid="SM" + "4" * 32))
    rows = InboundSms.objects.order_by("pk").values_list("provider_id", "sender", "keyword", "effect")
    assert list(rows) == [
        ("SM" + "3" * 32, PHONE, "", "none"),
        ("SM" + "4" * 32, "+33698765432", "YES", "opted_in"),  # nobody has that number: no consent changes
    ]
    assert not Consent.objects.exists()


@pytest.mark.parametrize("sid", ["", "SM" + "5" * 63], ids=["missing", "too-long"])
def test_a_signed_reply_without_a_usable_message_sid_is_refused(client, twilio_settings, sid):
    CustomerFactory(phone=PHONE)
    params = inbound_params("STOP", sid=sid)
    if not sid:
        del params["MessageSid"]
    response = signed_post(client, INBOUND_URL, params)
    assert response.status_code == 400
    assert response.content.decode() == MESSAGE_SID_MISSING
    assert not Consent.objects.exists() and not InboundSms.objects.exists()


def test_staff_read_the_replies_in_the_admin_and_change_none(admin_client, client, twilio_settings):
    signed_post(client, INBOUND_URL, inbound_params("STOP", sid="SM" + "6" * 32))
    inbound = InboundSms.objects.get()
    page = admin_client.get("/admin/notifications/inboundsms/").content.decode()
    assert "SM" + "6" * 32 in page and "Opted out of SMS" in page
    assert admin_client.get(f"/admin/notifications/inboundsms/{inbound.pk}/change/").status_code == 200
    assert admin_client.get("/admin/notifications/inboundsms/add/").status_code == 403
    response = admin_client.post(f"/admin/notifications/inboundsms/{inbound.pk}/change/", {"keyword": "START"})
    assert response.status_code == 403
    assert (
        admin_client.post(f"/admin/notifications/inboundsms/{inbound.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    inbound.refresh_from_db()
    assert (inbound.keyword, InboundSms.objects.count()) == ("STOP", 1)


def test_the_webhooks_only_accept_post(client, twilio_settings):
    assert client.get("/webhooks/twilio/status/").status_code == 405
    assert client.get("/webhooks/twilio/inbound/").status_code == 405
