"""``/webhooks/<provider>`` with real signatures made in the test: an SNS-style
RSA certificate, a Mailgun HMAC key and a SendGrid ECDSA key pair. One flipped
byte is always refused, and a refused request records nothing."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from kabarfeed.bounces import store, verp
from kabarfeed.bounces.model import Attribution
from kabarfeed.bounces.providers import sns_string_to_sign
from kabarfeed.store import Database
from kabarfeed.web.app import create_app
from tests import tls_support
from tests.bounces_support import Sent, add_sent, status_of
from tests.conftest import ConfigFactory

NOW = dt.datetime(2026, 12, 6, 1, 0, tzinfo=dt.UTC)
SECRET = "webhook-site-secret"
TOPIC = "arn:aws:sns:ap-southeast-3:123456789012:kabarfeed-ses"
CERT_URL = "https://sns.ap-southeast-3.amazonaws.com/SimpleNotificationService-abc.pem"
MAILGUN_KEY = "key-mailgun-signing-0123456789"


def _rsa_cert() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = tls_support.certificate(
        key,
        "sns.amazonaws.com",
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=365),
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Hooks:
    client: TestClient
    db: Database
    sent: Sent
    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey
    fetched: list[str] = field(default_factory=list)

    def events(self) -> list[Any]:
        with self.db.connect() as conn:
            return store.list_events(conn, limit=None)


@pytest.fixture
def hooks(make_config: ConfigFactory, db: Database, tmp_path: Path) -> Hooks:
    rsa_key, pem = _rsa_cert()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        ec_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    config = make_config(
        "[bounces]\n"
        'address = "bounces@news.example.id"\n'
        f'failed = "{tmp_path / "failed"}"\n'
        f'ses_topic_arns = ["{TOPIC}"]\n'
        'postmark_user = "postmark"\npostmark_password = "pm-pass"\n'
        'postmark_path_secret = "pm-path-secret-123"\n'
        f'mailgun_signing_key = "{MAILGUN_KEY}"\n'
        f'sendgrid_public_key = "{public}"\n',
        site=f'secret = "{SECRET}"\n',
    )
    sent = add_sent(db, NOW)
    client = TestClient(
        create_app(config, db, clock=lambda: NOW), base_url="https://news.example.id"
    )
    result = Hooks(client, db, sent, rsa_key, ec_key)

    def fetch(url: str) -> bytes:
        result.fetched.append(url)
        return pem

    client.app.state.sns_fetch = fetch  # type: ignore[attr-defined]
    return result


# -- SES through SNS ------------------------------------------------------------------------


def _sns(
    hooks: Hooks, message: dict[str, Any], *, version: str = "2", **extra: str
) -> dict[str, Any]:
    body = {
        "Type": "Notification",
        "MessageId": "6f1e3a2b-0000-4000-8000-000000000001",
        "TopicArn": TOPIC,
        "Message": json.dumps(message),
        "Timestamp": "2026-12-06T00:59:59.000Z",
        "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
        **extra,
    }
    algorithm: hashes.HashAlgorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
    signature = hooks.rsa_key.sign(sns_string_to_sign(body), padding.PKCS1v15(), algorithm)
    body["Signature"] = base64.b64encode(signature).decode()
    return body


def _ses_bounce(hooks: Hooks, kind: str = "Permanent", source: str | None = None) -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": kind,
            "bounceSubType": "General",
            "feedbackId": f"0100-feedback-{kind}",
            "bouncedRecipients": [
                {
                    "emailAddress": hooks.sent.email,
                    "action": "failed",
                    "status": "5.1.1" if kind == "Permanent" else "4.2.2",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
        },
        "mail": {
            "messageId": "0100-ses-id",
            "source": source or hooks.sent.verp,
            "commonHeaders": {"messageId": hooks.sent.message_id},
        },
    }


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


def test_ses_bounce_with_a_valid_sns_signature_bounces_the_subscriber(hooks: Hooks) -> None:
    verp_address = verp.encode("bounces@news.example.id", hooks.sent.delivery_id, SECRET.encode())
    body = _sns(hooks, _ses_bounce(hooks, source=verp_address))
    response = hooks.client.post("/webhooks/ses", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"recorded": 1, "duplicates": 0}
    (event,) = hooks.events()
    assert event.provider == "ses" and event.status_code == "5.1.1"
    assert event.attribution is Attribution.VERP and event.delivery_id == hooks.sent.delivery_id
    assert status_of(hooks.db, hooks.sent.subscriber_id) == "bounced"
    assert hooks.fetched == [CERT_URL]
    again = hooks.client.post("/webhooks/ses", json=body)
    assert again.json() == {"recorded": 0, "duplicates": 1}


def test_sns_signature_version_1_is_checked_too(hooks: Hooks) -> None:
    body = _sns(hooks, _ses_bounce(hooks, "Transient"), version="1")
    assert hooks.client.post("/webhooks/ses", json=body).status_code == 200
    assert status_of(hooks.db, hooks.sent.subscriber_id) == "active"  # one soft bounce
    body["Signature"] = _flip(body["Signature"], 10)
    body["MessageId"] = "other"
    assert hooks.client.post("/webhooks/ses", json=body).status_code == 403


@pytest.mark.parametrize("field_name", ["Message", "Signature", "TopicArn", "Timestamp"])
def test_one_flipped_byte_in_an_sns_message_is_refused(hooks: Hooks, field_name: str) -> None:
    body = _sns(hooks, _ses_bounce(hooks))
    body[field_name] = _flip(body[field_name], 12)
    response = hooks.client.post("/webhooks/ses", json=body)
    assert response.status_code == 403
    assert hooks.events() == []
    assert status_of(hooks.db, hooks.sent.subscriber_id) == "active"


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.ap-southeast-3.amazonaws.com/cert.pem",
        "https://sns.ap-southeast-3.amazonaws.com.evil.example/cert.pem",
        "https://evil.example/sns.ap-southeast-3.amazonaws.com/cert.pem",
        "https://sns.ap-southeast-3.amazonaws.com:8443/cert.pem",
    ],
)
def test_certificates_only_come_from_sns_over_https(hooks: Hooks, url: str) -> None:
    body = _sns(hooks, _ses_bounce(hooks), SigningCertURL=url)
    assert hooks.client.post("/webhooks/ses", json=body).status_code == 403
    assert hooks.fetched == [] and hooks.events() == []


def test_an_unconfigured_topic_is_refused(hooks: Hooks) -> None:
    body = _sns(hooks, _ses_bounce(hooks), TopicArn="arn:aws:sns:us-east-1:999:someone-else")
    assert hooks.client.post("/webhooks/ses", json=body).status_code == 403
    assert hooks.events() == []


def test_sns_subscription_is_confirmed_at_its_subscribe_url(hooks: Hooks) -> None:
    subscribe = "https://sns.ap-southeast-3.amazonaws.com/?Action=ConfirmSubscription&Token=t0k"
    body = _sns(
        hooks,
        {},
        Type="SubscriptionConfirmation",
        Token="t0k",
        SubscribeURL=subscribe,
    )
    body["Message"] = "You have chosen to subscribe to the topic"
    body["Signature"] = base64.b64encode(
        hooks.rsa_key.sign(sns_string_to_sign(body), padding.PKCS1v15(), hashes.SHA256())
    ).decode()
    assert hooks.client.post("/webhooks/ses", json=body).status_code == 200
    assert hooks.fetched == [CERT_URL, subscribe]


def test_ses_complaint_unsubscribes_and_suppresses(hooks: Hooks) -> None:
    complaint = {
        "notificationType": "Complaint",
        "complaint": {
            "feedbackId": "0100-complaint-1",
            "complaintFeedbackType": "abuse",
            "complainedRecipients": [{"emailAddress": hooks.sent.email}],
        },
        "mail": {"messageId": "x", "source": "bounces@news.example.id", "commonHeaders": {}},
    }
    assert hooks.client.post("/webhooks/ses", json=_sns(hooks, complaint)).status_code == 200
    assert status_of(hooks.db, hooks.sent.subscriber_id) == "unsubscribed"
    (event,) = hooks.events()
    assert event.attribution is Attribution.PROVIDER and event.kind.value == "complaint"
    with hooks.db.connect() as conn:
        assert store.is_suppressed(conn, hooks.sent.email)


# -- Postmark ---------------------------------------------------------------------------------


def _postmark(hooks: Hooks, kind: str = "HardBounce") -> dict[str, Any]:
    return {
        "RecordType": "Bounce" if kind != "SpamComplaint" else "SpamComplaint",
        "ID": 4323372036854775807,
        "Type": kind,
        "Email": hooks.sent.email,
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
    }


def test_postmark_needs_its_basic_auth_or_secret_path(hooks: Hooks) -> None:
    body = _postmark(hooks)
    assert hooks.client.post("/webhooks/postmark", json=body).status_code == 401
    wrong = hooks.client.post("/webhooks/postmark", json=body, auth=("postmark", "pm-pasS"))
    assert wrong.status_code == 401
    bad_path = hooks.client.post("/webhooks/postmark/pm-path-secret-124", json=body)
    assert bad_path.status_code == 401
    assert hooks.events() == []
    ok = hooks.client.post("/webhooks/postmark", json=body, auth=("postmark", "pm-pass"))
    assert ok.status_code == 200 and ok.json()["recorded"] == 1
    assert status_of(hooks.db, hooks.sent.subscriber_id) == "bounced"
    (event,) = hooks.events()
    assert event.status_code == "5.1.1" and event.attribution is Attribution.PROVIDER
    by_path = hooks.client.post("/webhooks/postmark/pm-path-secret-123", json=body)
    assert by_path.status_code == 200 and by_path.json()["duplicates"] == 1


def test_postmark_spam_complaint(hooks: Hooks) -> None:
    body = _postmark(hooks, "SpamComplaint")
    ok = hooks.client.post("/webhooks/postmark/pm-path-secret-123", json=body)
    assert ok.status_code == 200
    assert status_of(hooks.db, hooks.sent.subscriber_id) == "unsubscribed"


# -- Mailgun -----------------------------------------------------------------------------------


def _mailgun(
    hooks: Hooks, *, token: str = "tok-1", when: dt.datetime = NOW, severity: str = "permanent"
) -> dict[str, Any]:
    stamp = str(int(when.timestamp()))
    signature = hmac.new(MAILGUN_KEY.encode(), (stamp + token).encode(), hashlib.sha256)
    return {
        "signature": {"timestamp": stamp, "token": token, "signature": signature.hexdigest()},
        "event-data": {
            "id": f"mg-event-{token}",
            "event": "failed",
            "severity": severity,
            "reason": "bounce",
            "recipient": hooks.sent.email,
            "envelope": {
                "sender": verp.encode(
                    "bounces@news.example.id", hooks.sent.delivery_id, SECRET.encode()
                )
            },
            "message": {"headers": {"message-id": hooks.sent.message_id.strip("<>")}},
            "delivery-status": {
                "code": 550 if severity == "permanent" else 452,
                "description": "5.1.1 mailbox does not exist"
                if severity == "permanent"
                else "4.2.2 mailbox full",
            },
        },
    }


def test_mailgun_hmac_is_checked_and_a_permanent_failure_bounces(hooks: Hooks) -> None:
    body = _mailgun(hooks)
    response = hooks.client.post("/webhooks/mailgun", json=body)
    assert response.status_code == 200 and response.json()["recorded"] == 1
    (event,) = hooks.events()
    assert event.attribution is Attribution.VERP and event.delivery_id == hooks.sent.delivery_id
    assert status_of(hooks.db, hooks.sent.subscriber_id) == "bounced"


def test_mailgun_flipped_byte_stale_timestamp_and_replay_are_refused(hooks: Hooks) -> None:
    flipped = _mailgun(hooks, token="tok-2")
    flipped["signature"]["signature"] = _flip(flipped["signature"]["signature"], 5)
    assert hooks.client.post("/webhooks/mailgun", json=flipped).status_code == 403
    stale = _mailgun(hooks, token="tok-4", when=NOW - dt.timedelta(hours=1))
    assert hooks.client.post("/webhooks/mailgun", json=stale).status_code == 403
    assert hooks.events() == []
    first = _mailgun(hooks, token="tok-5", severity="temporary")
    assert hooks.client.post("/webhooks/mailgun", json=first).status_code == 200
    replay = _mailgun(hooks, token="tok-5", severity="permanent")
    replay["event-data"]["id"] = "another-event"
    assert hooks.client.post("/webhooks/mailgun", json=replay).status_code == 403
    (event,) = hooks.events()
    assert event.kind.value == "soft"
    assert status_of(hooks.db, hooks.sent.subscriber_id) == "active"


# -- SendGrid ------------------------------------------------------------------------------------


def _sendgrid(
    hooks: Hooks, events: list[dict[str, Any]], when: dt.datetime = NOW
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(events).encode()
    stamp = str(int(when.timestamp()))
    signature = hooks.ec_key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        "Content-Type": "application/json",
    }


def _sg_events(hooks: Hooks) -> list[dict[str, Any]]:
    return [
        {"email": hooks.sent.email, "event": "delivered", "sg_event_id": "e0"},
        {
            "email": hooks.sent.email,
            "event": "bounce",
            "type": "bounce",
            "status": "5.1.1",
            "reason": "550 5.1.1 user unknown",
            "sg_event_id": "e1",
            "smtp-id": hooks.sent.message_id,
        },
        {"email": hooks.sent.email, "event": "spamreport", "sg_event_id": "e2"},
    ]


def test_sendgrid_ecdsa_signed_batch_is_recorded(hooks: Hooks) -> None:
    body, headers = _sendgrid(hooks, _sg_events(hooks))
    response = hooks.client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert response.status_code == 200 and response.json() == {"recorded": 2, "duplicates": 0}
    kinds = sorted(e.kind.value for e in hooks.events())
    assert kinds == ["complaint", "hard"]
    assert status_of(hooks.db, hooks.sent.subscriber_id) == "bounced"  # hard first, then complaint
    with hooks.db.connect() as conn:
        assert store.is_suppressed(conn, hooks.sent.email)


@pytest.mark.parametrize(
    "damage",
    [
        lambda b, h: (b[:20] + bytes([b[20] ^ 1]) + b[21:], h),
        lambda b, h: (
            b,
            {**h, "X-Twilio-Email-Event-Webhook-Timestamp": str(int(NOW.timestamp()) + 1)},
        ),
        lambda b, h: (b, {k: v for k, v in h.items() if "Signature" not in k}),
    ],
    ids=["flipped-body-byte", "other-timestamp", "no-signature"],
)
def test_sendgrid_refuses_anything_not_signed(
    hooks: Hooks, damage: Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]]
) -> None:
    body, headers = damage(*_sendgrid(hooks, _sg_events(hooks)))
    assert hooks.client.post("/webhooks/sendgrid", content=body, headers=headers).status_code == 403
    assert hooks.events() == []


def test_sendgrid_stale_timestamp_is_refused(hooks: Hooks) -> None:
    body, headers = _sendgrid(hooks, _sg_events(hooks), when=NOW - dt.timedelta(hours=2))
    assert hooks.client.post("/webhooks/sendgrid", content=body, headers=headers).status_code == 403


def test_unconfigured_providers_are_not_found(
    make_config: ConfigFactory, db: Database, tmp_path: Path
) -> None:
    client = TestClient(create_app(make_config(), db, clock=lambda: NOW))
    for provider in ("ses", "postmark", "mailgun", "sendgrid"):
        assert client.post(f"/webhooks/{provider}", json={}).status_code == 404


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=30,
)
_KEYS = st.sampled_from(
    [
        "notificationType",
        "bounce",
        "complaint",
        "mail",
        "bouncedRecipients",
        "bounceType",
        "RecordType",
        "Type",
        "Email",
        "ID",
        "event-data",
        "event",
        "severity",
        "recipient",
        "delivery-status",
        "message",
        "headers",
        "email",
        "status",
        "reason",
        "sg_event_id",
    ]
)
_PAYLOAD = st.dictionaries(_KEYS, _JSON, max_size=8)


@settings(max_examples=150, deadline=None)
@given(payload=_PAYLOAD, batch=st.lists(_PAYLOAD, max_size=4))
def test_provider_payloads_of_any_shape_map_or_are_ignored(
    payload: dict[str, Any], batch: list[dict[str, Any]]
) -> None:
    from kabarfeed.bounces import providers

    for reports in (
        providers.ses_reports(payload, verified=True),
        providers.postmark_reports(payload),
        providers.mailgun_reports(payload),
        providers.sendgrid_reports(batch),
    ):
        for report in reports:
            assert len(report.dedup_key) <= 200 and report.findings
