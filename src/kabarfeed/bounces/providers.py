"""ESP webhooks: signature checks and payload → :class:`Report` mapping. Pure
(the certificate fetcher and the seen-token check are injected).

Every provider's vocabulary maps onto the same kinds: hard / soft bounce,
delay, complaint, unsubscribe. Events that say nothing about a failure
(delivered, opened, clicked, processed) give no report at all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from kabarfeed.bounces.model import EventKind, EventSource, Finding, Report
from kabarfeed.bounces.parse import classify_code
from kabarfeed.errors import InputError, WebhookAuthError

SNS_HOST_RE = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_SNS_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SNS_SUBSCRIPTION_KEYS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)

Json = dict[str, Any]


def _report(
    provider: str,
    event_id: str,
    kind: EventKind,
    recipient: str | None,
    *,
    status: str | None = None,
    diagnostic: str | None = None,
    action: str | None = None,
    return_path: str | None = None,
    message_id: str | None = None,
    verified: bool = True,
) -> Report:
    digest = hashlib.sha256(f"{event_id}\x1f{recipient or ''}".encode()).hexdigest()[:40]
    return Report(
        source=EventSource.WEBHOOK,
        dedup_key=f"{provider}:{digest}",
        findings=(Finding(kind, recipient, status, _clip(diagnostic), action),),
        raw_ref=f"{provider} event {event_id}"[:500],
        return_paths=(return_path,) if return_path else (),
        original_message_id=_angle(message_id),
        provider=provider,
        provider_verified=verified,
    )


def _clip(text: str | None) -> str | None:
    cleaned = " ".join(str(text or "").split())
    return cleaned[:1000] or None


def _angle(message_id: str | None) -> str | None:
    if not message_id:
        return None
    value = str(message_id).strip()
    return value if value.startswith("<") else f"<{value}>"


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


# -- Amazon SES through SNS ----------------------------------------------------------------


def check_sns_url(url: str) -> None:
    """Only ``https://sns.<region>.amazonaws.com/…`` (a forged message could point
    at any certificate)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not SNS_HOST_RE.match(parts.hostname or "") or parts.port:
        raise WebhookAuthError(f"not an SNS URL: {url[:200]}")


def sns_string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The canonical text SNS signs: ``Key\\nValue\\n`` for the type's keys."""
    kind = message.get("Type")
    keys = _SNS_NOTIFICATION_KEYS if kind == "Notification" else _SNS_SUBSCRIPTION_KEYS
    out = ""
    for key in keys:
        if key in message and message[key] is not None:
            out += f"{key}\n{message[key]}\n"
    return out.encode("utf-8")


def verify_sns(message: Mapping[str, Any], fetch_cert: Callable[[str], bytes]) -> None:
    """Check an SNS message's signature with the certificate at its
    ``SigningCertURL``; :class:`WebhookAuthError` when anything is off."""
    url = _text(message.get("SigningCertURL"))
    check_sns_url(url)
    version = str(message.get("SignatureVersion", ""))
    algorithm: hashes.HashAlgorithm
    if version == "1":
        algorithm = hashes.SHA1()  # noqa: S303 (SNS SignatureVersion 1 is SHA1withRSA)
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        raise WebhookAuthError(f"unknown SNS SignatureVersion {version!r}")
    try:
        signature = base64.b64decode(_text(message.get("Signature")), validate=True)
        cert = x509.load_pem_x509_certificate(fetch_cert(url))
    except (ValueError, TypeError) as e:
        raise WebhookAuthError(f"unusable SNS signature or certificate: {e}") from e
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookAuthError("the SNS certificate has no RSA key")
    try:
        key.verify(signature, sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature as e:
        raise WebhookAuthError("SNS signature does not match") from e


def ses_reports(notification: Mapping[str, Any], *, verified: bool) -> list[Report]:
    """An SES bounce / complaint notification (the SNS ``Message``, parsed)."""
    kind = _text(notification.get("notificationType") or notification.get("eventType"))
    mail = _dict(notification.get("mail"))
    source = _text(mail.get("source"))
    message_id = _text(_dict(mail.get("commonHeaders")).get("messageId"))
    out: list[Report] = []
    if kind == "Bounce":
        bounce = _dict(notification.get("bounce"))
        permanent = bounce.get("bounceType") == "Permanent"
        event_id = _text(bounce.get("feedbackId")) or _text(mail.get("messageId"))
        for item in _list(bounce.get("bouncedRecipients")):
            r = _dict(item)
            status = _text(r.get("status")) or None
            event_kind = EventKind.HARD if permanent else EventKind.SOFT
            out.append(
                _report(
                    "ses",
                    event_id,
                    event_kind,
                    _text(r.get("emailAddress")) or None,
                    status=status,
                    diagnostic=_text(r.get("diagnosticCode")) or _text(bounce.get("bounceSubType")),
                    action=f"{bounce.get('bounceType')}/{bounce.get('bounceSubType')}",
                    return_path=source,
                    message_id=message_id,
                    verified=verified,
                )
            )
    elif kind == "Complaint":
        complaint = _dict(notification.get("complaint"))
        feedback = _text(complaint.get("complaintFeedbackType")) or "abuse"
        event_kind = EventKind.UNKNOWN if feedback == "not-spam" else EventKind.COMPLAINT
        for r in _list(complaint.get("complainedRecipients")):
            out.append(
                _report(
                    "ses",
                    _text(complaint.get("feedbackId")) or _text(mail.get("messageId")),
                    event_kind,
                    _text(_dict(r).get("emailAddress")) or None,
                    action=feedback,
                    return_path=source,
                    message_id=message_id,
                    verified=verified,
                )
            )
    return out


# -- Postmark ----------------------------------------------------------------------------------

_POSTMARK_KINDS = {
    "HardBounce": EventKind.HARD,
    "BadEmailAddress": EventKind.HARD,
    "ManuallyDeactivated": EventKind.HARD,
    "SoftBounce": EventKind.SOFT,
    "Transient": EventKind.SOFT,
    "DnsError": EventKind.SOFT,
    "Blocked": EventKind.SOFT,
    "DMARCPolicy": EventKind.SOFT,
    "SpamComplaint": EventKind.COMPLAINT,
    "SpamNotification": EventKind.COMPLAINT,
    "Unsubscribe": EventKind.UNSUBSCRIBE,
    "AutoResponder": EventKind.AUTOREPLY,
}


def postmark_reports(payload: Mapping[str, Any]) -> list[Report]:
    """A Postmark Bounce, SpamComplaint or SubscriptionChange webhook."""
    record = _text(payload.get("RecordType"))
    event_id = str(payload.get("ID") or payload.get("MessageID") or "")
    recipient = _text(payload.get("Email") or payload.get("Recipient")) or None
    if record == "SubscriptionChange":
        if not payload.get("SuppressSending"):
            return []
        reason = _text(payload.get("SuppressionReason"))
        kind = {"HardBounce": EventKind.HARD, "SpamComplaint": EventKind.COMPLAINT}.get(
            reason, EventKind.UNSUBSCRIBE
        )
        stamp = _text(payload.get("ChangedAt"))
        return [_report("postmark", f"{event_id}:{stamp}", kind, recipient, action=reason)]
    if record not in ("Bounce", "SpamComplaint"):
        return []
    kind = _POSTMARK_KINDS.get(_text(payload.get("Type")), EventKind.UNKNOWN)
    details = _text(payload.get("Details")) or _text(payload.get("Description"))
    status = _enhanced(details)
    return [
        _report(
            "postmark",
            event_id,
            kind,
            recipient,
            status=status,
            diagnostic=details,
            action=_text(payload.get("Type")),
        )
    ]


# -- Mailgun ---------------------------------------------------------------------------------------


def verify_mailgun(
    signature: Mapping[str, Any],
    key: bytes,
    *,
    now: datetime,
    max_age: timedelta,
    first_use: Callable[[str], bool],
) -> None:
    """HMAC-SHA256 over ``timestamp + token``; a stale timestamp or a token seen
    before (``first_use`` returns False) is refused."""
    timestamp, token = _text(signature.get("timestamp")), _text(signature.get("token"))
    given = _text(signature.get("signature"))
    if not (timestamp.isdigit() and token and given):
        raise WebhookAuthError("missing Mailgun signature fields")
    expected = hmac.new(key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given.lower()):
        raise WebhookAuthError("Mailgun signature does not match")
    if abs(now.timestamp() - int(timestamp)) > max_age.total_seconds():
        raise WebhookAuthError("stale Mailgun timestamp")
    if not first_use(token):
        raise WebhookAuthError("Mailgun token used before (a replay)")


def mailgun_reports(payload: Mapping[str, Any]) -> list[Report]:
    """A Mailgun ``event-data`` (failed, complained, unsubscribed)."""
    data = _dict(payload.get("event-data"))
    event = _text(data.get("event"))
    recipient = _text(data.get("recipient")) or None
    headers = _dict(_dict(data.get("message")).get("headers"))
    status = _dict(data.get("delivery-status"))
    return_path = _text(_dict(data.get("envelope")).get("sender")) or None
    message_id = _text(headers.get("message-id")) or None
    event_id = _text(data.get("id"))
    if event == "failed":
        permanent = data.get("severity") == "permanent"
        text = _text(status.get("description")) or _text(status.get("message"))
        code = _text(status.get("enhanced-code")) or _enhanced(text) or str(status.get("code", ""))
        kind = EventKind.HARD if permanent else EventKind.SOFT
        if permanent and code and classify_code(code, text) is EventKind.SOFT:
            kind = EventKind.SOFT  # a permanent policy block is not a dead address
        return [
            _report(
                "mailgun",
                event_id,
                kind,
                recipient,
                status=code or None,
                diagnostic=text,
                action=f"failed/{data.get('severity')}/{data.get('reason')}",
                return_path=return_path,
                message_id=message_id,
            )
        ]
    if event in ("complained", "unsubscribed"):
        kind = EventKind.COMPLAINT if event == "complained" else EventKind.UNSUBSCRIBE
        return [
            _report(
                "mailgun",
                event_id,
                kind,
                recipient,
                action=event,
                return_path=return_path,
                message_id=message_id,
            )
        ]
    return []


# -- SendGrid --------------------------------------------------------------------------------------


def load_sendgrid_key(public_key: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER, or PEM)."""
    text = public_key.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text))
    except ValueError as e:
        raise InputError(f"bounces.sendgrid_public_key is not a public key: {e}") from e
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InputError("bounces.sendgrid_public_key is not an ECDSA key")
    return key


def verify_sendgrid(
    key: ec.EllipticCurvePublicKey,
    signature: str,
    timestamp: str,
    body: bytes,
    *,
    now: datetime,
    max_age: timedelta,
) -> None:
    """ECDSA (P-256, SHA-256) over ``timestamp + body``; stale timestamps refused."""
    if not signature or not timestamp.isdigit():
        raise WebhookAuthError("missing SendGrid signature headers")
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature) as e:
        raise WebhookAuthError("SendGrid signature does not match") from e
    if abs(now.timestamp() - int(timestamp)) > max_age.total_seconds():
        raise WebhookAuthError("stale SendGrid timestamp")


def sendgrid_reports(events: object) -> list[Report]:
    """A SendGrid Event Webhook batch (a JSON array)."""
    if not isinstance(events, list):
        raise InputError("a SendGrid batch is a JSON array")
    out: list[Report] = []
    for item in events:
        ev = _dict(item)
        name = _text(ev.get("event"))
        reason = _text(ev.get("reason")) or _text(ev.get("response"))
        status = _text(ev.get("status")) or _enhanced(reason)
        if name == "bounce":
            kind = EventKind.SOFT if ev.get("type") == "blocked" else EventKind.HARD
            if status and classify_code(status, reason) is EventKind.SOFT:
                kind = EventKind.SOFT
        elif name == "deferred":
            kind = EventKind.DELAYED
        elif name == "spamreport":
            kind = EventKind.COMPLAINT
        elif name in ("unsubscribe", "group_unsubscribe"):
            kind = EventKind.UNSUBSCRIBE
        else:
            continue
        out.append(
            _report(
                "sendgrid",
                _text(ev.get("sg_event_id")) or json.dumps(ev, sort_keys=True),
                kind,
                _text(ev.get("email")) or None,
                status=status or None,
                diagnostic=reason,
                action=f"{name}/{ev.get('type') or ''}".rstrip("/"),
                message_id=_text(ev.get("smtp-id")) or None,
            )
        )
    return out


_ENHANCED_RE = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")


def _enhanced(text: str | None) -> str | None:
    match = _ENHANCED_RE.search(text or "")
    return match[0] if match else None
