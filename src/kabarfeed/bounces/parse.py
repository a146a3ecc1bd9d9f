"""Read one report (the raw bytes of a mail) into a :class:`Report`. Pure.

In order: an RFC 3464 DSN (``multipart/report; report-type=delivery-status``,
one finding per recipient block), an RFC 5965 ARF feedback report (a
complaint), an obvious auto-reply (out-of-office, vacation, "thank you for your
message": ignored), a non-standard bounce recognised by :mod:`flufl.bounce`
(Exchange, qmail, old Postfix, provider templates), an RFC 3834
``Auto-Submitted`` message (ignored); anything else is ``unknown``.

Input that is not a mail at all, or a report cut off before anything could be
read, raises :class:`~kabarfeed.errors.IntakeError`; nothing else escapes.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

from kabarfeed.bounces.model import EventKind, EventSource, Finding, Report
from kabarfeed.errors import IntakeError

log = logging.getLogger(__name__)

_ENHANCED_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BASIC_RE = re.compile(r"\b([245])\d\d\b")
_MSGID_RE = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]{3,250}>)", re.I | re.M)
_TOKEN_RE = re.compile(r"/u/([A-Za-z0-9_-]{24,64})")
_ADDRESS_RE = re.compile(r"<?([^<>\s;]+@[^<>\s;]+)>?")
_AUTO_SUBJECT_RE = re.compile(
    r"out of (the )?office|auto(matic|matisch)?[ -]?(reply|response|antwort|respon)"
    r"|\bvacation\b|\baway from\b|\bon leave\b|thank(s| you) for (your|contacting)"
    r"|terima ?kasih (atas|telah)|balasan otomatis|di luar kantor|sedang cuti"
    r"|abwesenheit|\babsence\b|r[ée]ponse automatique",
    re.I,
)
_SOFT_WORDS_RE = re.compile(
    r"quota|mailbox (is )?full|over ?quota|insufficient|storage|too (many|large|big)"
    r"|try again|temporar|rate limit|spam|blocked|block ?list|blacklist|policy|reputation",
    re.I,
)
_HARD_SUBJECTS = frozenset({"1", "4"})
"""Status subject classes that are about the address itself: 5.1.x (addressing,
including 5.1.10 null MX) and 5.4.x (no route to the domain)."""
_SOFT_DETAILS = frozenset({"5.2.2", "5.2.3", "5.3.4", "5.4.7"})
_HEADERS_ONLY = ("text/rfc822-headers",)
_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder")
_RETURN_PATH_HEADERS = (
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Envelope-To",
    "X-Original-Recipient",
    "To",
)


def parse_report(data: bytes, *, raw_ref: str = "", envelope_to: str | None = None) -> Report:
    """Parse ``data``. ``envelope_to`` is the address the MTA delivered it to
    (a pipe's ``${original_recipient}``), the best VERP clue when given."""
    if not data.strip():
        raise IntakeError("empty input")
    msg = message_from_bytes(data, policy=compat32)
    if not _looks_like_mail(msg):
        raise IntakeError("not a mail message: no header lines at the top")
    source, findings = _findings(msg)
    if _truncated(msg) and all(f.kind is EventKind.UNKNOWN for f in findings):
        raise IntakeError("truncated: the MIME structure ends before its report part")
    originals = list(_originals(msg))
    return Report(
        source=source,
        dedup_key=_dedup_key(msg, data),
        findings=tuple(findings),
        raw_ref=raw_ref,
        return_paths=_return_paths(msg, envelope_to, originals),
        original_message_id=_original_message_id(msg, originals, data),
        list_tokens=_list_tokens(originals, data),
    )


# -- what the report says ----------------------------------------------------------------


def _findings(msg: Message) -> tuple[EventSource, list[Finding]]:
    report_type = msg.get_param("report-type", header="content-type") or ""
    report_type = str(report_type).lower() if not isinstance(report_type, tuple) else ""
    if msg.get_content_type() == "multipart/report" or report_type:
        dsn = _dsn_findings(msg)
        if dsn is not None:
            return EventSource.DSN, dsn
        arf = _arf_findings(msg)
        if arf is not None:
            return EventSource.ARF, arf
        detected = _flufl_findings(msg)
        if detected:
            return EventSource.MAIL, detected
        cut = "truncated" if _truncated(msg) else "damaged"
        raise IntakeError(f"{cut} report: no delivery-status or feedback-report part")
    if _obvious_autoreply(msg):
        sender = _address(header(msg, "From").rpartition("<")[2])
        return EventSource.MAIL, [Finding(EventKind.AUTOREPLY, sender, action="auto-reply")]
    detected = _flufl_findings(msg)
    if detected:
        return EventSource.MAIL, detected
    auto = header(msg, "Auto-Submitted").lower()
    if auto and not auto.startswith("no") and not _from_mail_system(msg):
        sender = _address(header(msg, "From").rpartition("<")[2])
        return EventSource.MAIL, [Finding(EventKind.AUTOREPLY, sender, action=auto.split(";")[0])]
    return EventSource.MAIL, [Finding(EventKind.UNKNOWN)]


def _parts(msg: Message, content_type: str) -> Iterator[Message]:
    for part in msg.walk():
        if part.get_content_type() == content_type:
            yield part


def _field_blocks(part: Message) -> list[Message]:
    """The header blocks of a ``message/delivery-status``-like part (the stdlib
    parses them into messages; a damaged part may stay text)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    if isinstance(payload, str):
        blocks = re.split(r"\r?\n\s*\r?\n", payload.strip())
        return [HeaderParser(policy=compat32).parsestr(b) for b in blocks if b.strip()]
    return []


def _dsn_findings(msg: Message) -> list[Finding] | None:
    parts = list(_parts(msg, "message/delivery-status")) or list(
        _parts(msg, "message/global-delivery-status")
    )
    if not parts:
        return None
    out: list[Finding] = []
    for block in _field_blocks(parts[0]):
        named = header(block, "Final-Recipient") or header(block, "Original-Recipient")
        recipient = _address(named)
        action = header(block, "Action").lower().strip() or None
        if recipient is None and action is None:
            continue  # the per-message block
        status = header(block, "Status").strip() or None
        diagnostic = _clip(header(block, "Diagnostic-Code"))
        kind = classify(action, status, diagnostic)
        if kind is not None:
            code = _status_code(status, diagnostic)
            out.append(Finding(kind, recipient, code, diagnostic, action))
    return out or [Finding(EventKind.UNKNOWN, action="dsn without failures")]


def _arf_findings(msg: Message) -> list[Finding] | None:
    parts = list(_parts(msg, "message/feedback-report"))
    if not parts:
        return None
    blocks = _field_blocks(parts[0])
    fields = blocks[0] if blocks else Message()
    feedback_type = header(fields, "Feedback-Type").lower().strip() or "abuse"
    recipient = _address(header(fields, "Original-Rcpt-To"))
    if recipient is None:
        for original in _originals(msg):
            recipient = _address(header(original, "To"))
            break
    kind = EventKind.UNKNOWN if feedback_type == "not-spam" else EventKind.COMPLAINT
    return [Finding(kind, recipient, None, _clip(header(fields, "User-Agent")), feedback_type)]


def _obvious_autoreply(msg: Message) -> bool:
    if any(msg.get(h) for h in _AUTO_HEADERS):
        return True
    if header(msg, "Precedence").lower().strip() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT_RE.search(header(msg, "Subject")))


def _flufl_findings(msg: Message) -> list[Finding]:
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(msg)
    except Exception as e:  # a third-party heuristic: never let it end the intake
        log.debug("flufl.bounce failed on a report: %s", e)
        return []
    text = _body_text(msg)
    out = [_detected(EventKind.HARD, _text(a), text) for a in sorted(permanent)]
    out += [_detected(EventKind.SOFT, _text(a), text) for a in sorted(temporary - permanent)]
    return [f for f in out if f.recipient]


def _detected(kind: EventKind, recipient: str, text: str) -> Finding:
    """A detector's finding, with the status and diagnostic the bounce text
    gives next to the address (qmail's ``(#5.1.1)``, Exchange's ``#550 5.2.2``)."""
    window = _failure_window(text, recipient)
    lines: list[str] = []
    for line in window.splitlines()[1:]:
        if not line.strip():
            if lines:
                break
            continue
        lines.append(line.strip())
        if len(lines) == 3:
            break
    diagnostic = _clip(" ".join(lines)) if lines else None
    status = _status_code(None, window) if window else None
    if status is not None and classify_code(status, diagnostic) is EventKind.SOFT:
        kind = EventKind.SOFT
    return Finding(kind, recipient or None, status, diagnostic, "failed")


_FAILURE_WORDS_RE = re.compile(
    r"\bnot\b|\bno\b|unknown|reject|invalid|full|quota|denied|disabled|#\d", re.I
)


def _failure_window(text: str, recipient: str) -> str:
    """The text after the mention of ``recipient`` that explains its failure
    (the first mention followed by failure words; else the first mention)."""
    lowered, needle = text.lower(), recipient.lower()
    first = ""
    at = lowered.find(needle) if needle else -1
    while at >= 0:
        window = text[at : at + 400]
        first = first or window
        following = "\n".join(window.splitlines()[1:3])
        if _FAILURE_WORDS_RE.search(following):
            return window
        at = lowered.find(needle, at + len(needle))
    return first


def _body_text(msg: Message, limit: int = 20000) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            return _decoded_text(part)[:limit]
    return ""


def classify(action: str | None, status: str | None, diagnostic: str | None) -> EventKind | None:
    """The kind of one DSN recipient block; ``None`` for a success
    (delivered, relayed, expanded), which is no event at all."""
    if action in ("delivered", "relayed", "expanded"):
        return None
    if action == "delayed":
        return EventKind.DELAYED
    code = _status_code(status, diagnostic)
    if code is None:
        return EventKind.HARD if action == "failed" else EventKind.UNKNOWN
    return classify_code(code, diagnostic)


def classify_code(code: str, diagnostic: str | None = None) -> EventKind:
    """Hard or soft for a status code (``5.1.1``, or a basic ``550``)."""
    if code.startswith(("2",)):
        return EventKind.UNKNOWN
    if code.startswith("4"):
        return EventKind.SOFT
    parts = code.split(".")
    if len(parts) == 3:
        if code in _SOFT_DETAILS:
            return EventKind.SOFT
        if parts[1] in _HARD_SUBJECTS or code == "5.2.1":
            return EventKind.HARD
        if parts[1] == "0" and not _SOFT_WORDS_RE.search(diagnostic or ""):
            return EventKind.HARD
        return EventKind.SOFT
    if _SOFT_WORDS_RE.search(diagnostic or ""):
        return EventKind.SOFT
    return EventKind.HARD if code in ("550", "551", "553") else EventKind.SOFT


def _status_code(status: str | None, diagnostic: str | None) -> str | None:
    for text in (status, diagnostic):
        match = _ENHANCED_RE.search(text or "")
        if match:
            return match[0]
    match = _BASIC_RE.search(diagnostic or "")
    return match[0] if match else None


# -- which of our messages it concerns ------------------------------------------------------


def _originals(msg: Message) -> Iterator[Message]:
    """The quoted original message(s): ``message/rfc822`` or ``text/rfc822-headers``."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                yield payload[0]
        elif ctype in _HEADERS_ONLY:
            text = _decoded_text(part)
            if text:
                yield HeaderParser(policy=compat32).parsestr(text)


def _original_message_id(msg: Message, originals: list[Message], data: bytes) -> str | None:
    own = header(msg, "Message-ID").strip()
    for original in originals:
        found = header(original, "Message-ID").strip()
        if found and found != own:
            return found
    for match in _MSGID_RE.finditer(data.decode("utf-8", "replace")):
        if match[1] != own:
            return match[1]
    return None


def _list_tokens(originals: list[Message], data: bytes) -> tuple[str, ...]:
    seen: list[str] = []
    texts = [header(o, "List-Unsubscribe") for o in originals]
    texts.append(data.decode("utf-8", "replace"))
    for text in texts:
        for token in _TOKEN_RE.findall(text):
            if token not in seen:
                seen.append(token)
    return tuple(seen[:5])


def _return_paths(
    msg: Message, envelope_to: str | None, originals: list[Message]
) -> tuple[str, ...]:
    """Where the report was delivered (VERP candidates), best first; then the
    quoted original's ``Return-Path``, for relays that rewrote the envelope."""
    found: list[str] = []
    candidates = [envelope_to or ""]
    for name in _RETURN_PATH_HEADERS:
        candidates += [_text(v) for v in msg.get_all(name) or []]
    candidates += [header(o, "Return-Path") for o in originals]
    for value in candidates:
        for match in _ADDRESS_RE.finditer(value):
            if match[1] not in found:
                found.append(match[1])
    return tuple(found[:10])


def _dedup_key(msg: Message, data: bytes) -> str:
    own = header(msg, "Message-ID").strip()
    if own:
        return "mid:" + hashlib.sha256(own.encode("utf-8", "replace")).hexdigest()[:48]
    return "sha:" + hashlib.sha256(data).hexdigest()[:48]


# -- small tolerant helpers ---------------------------------------------------------------


def header(msg: Message, name: str) -> str:
    """A header as text ('' when absent), RFC 2047 words decoded, never raising."""
    value = msg.get(name)
    return _text(value) if value is not None else ""


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    try:
        return str(make_header(decode_header(str(value))))
    except Exception:  # malformed encoded words: keep the raw text
        return str(value).encode("utf-8", "replace").decode("utf-8", "replace")


def _address(field: str) -> str | None:
    """``rfc822; user@example.com`` → ``user@example.com``."""
    value = field.split(";", 1)[-1].strip().strip("<>").strip()
    return value[:320] if "@" in value else None


def _clip(text: str, limit: int = 1000) -> str | None:
    cleaned = " ".join(text.split())
    return cleaned[:limit] or None


def _decoded_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return ""
    if isinstance(payload, bytes):
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    return payload if isinstance(payload, str) else ""


def _from_mail_system(msg: Message) -> bool:
    """Sent by a mail system (a bounce we could not read), not a person's auto-reply."""
    sender = header(msg, "From").lower()
    return any(name in sender for name in ("mailer-daemon", "postmaster", "mail delivery"))


def _looks_like_mail(msg: Message) -> bool:
    keys = [k.lower() for k in msg]
    known = {"from", "to", "subject", "date", "message-id", "content-type", "received"}
    return bool(known.intersection(keys))


def _truncated(msg: Message) -> bool:
    return any(
        type(d).__name__ in ("CloseBoundaryNotFoundDefect", "StartBoundaryNotFoundDefect")
        for part in msg.walk()
        for d in getattr(part, "defects", [])
    )
