"""Inbound mail, parsed once at the boundary (pure: bytes in, a typed value or a reason out).

`parse_mail` is total: it returns a `Parsed` message or raises `BadMail` with the reason,
and the caller keeps the raw bytes as a dead letter. Limits: the whole message
(MAX_MESSAGE_BYTES), the number of MIME parts (MAX_PARTS), the text kept (MAX_TEXT_CHARS).

What it recognises:
- threading: Message-ID, In-Reply-To, References (angle-bracketed ids, at most 50);
- bounces (RFC 3464 `multipart/report; report-type=delivery-status`): the failed
  recipients, their status code and diagnostic;
- auto-replies (RFC 3834 `Auto-Submitted` other than `no`, `X-Autoreply`,
  `X-Autorespond`, `Precedence: auto_reply/bulk/junk`, and out-of-office subjects);
- the reply's own words: `strip_reply` drops quoted lines (`>`), the quote header that
  mail clients add ("On ... wrote:", "-----Original Message-----", "From: ... Sent: ..."),
  and the signature after `-- ` or a few common sign-off markers.
"""

from __future__ import annotations

import email
import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message

from engage.render import html_to_text

MAX_MESSAGE_BYTES = 10 * 1024 * 1024
MAX_PARTS = 200
MAX_TEXT_CHARS = 100_000
MAX_REFS = 50
_MSGID = re.compile(r"<[^<>\s]{1,500}>")
_QUOTE_HEADERS = (
    re.compile(r"^\s*On .{1,300}wrote:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Am .{1,300}schrieb .{0,200}:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Le .{1,300}a écrit\s*:\s*$", re.IGNORECASE),
    re.compile(r"^\s*-{2,}\s*Original Message\s*-{2,}\s*$", re.IGNORECASE),
    re.compile(r"^\s*-{2,}\s*Forwarded message\s*-{2,}\s*$", re.IGNORECASE),
    re.compile(r"^\s*_{10,}\s*$"),
    re.compile(r"^\s*From:\s.+$", re.IGNORECASE),
)
_SIGNATURE = (
    re.compile(r"^-- ?$"),
    re.compile(r"^\s*(Sent from my |Get Outlook for )", re.IGNORECASE),
)
_OOO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto[- ]?reply|autoreply|abwesenheit|"
    r"absence|r[ée]ponse automatique|vacation)",
    re.IGNORECASE,
)


class BadMail(ValueError):
    """Mail that cannot be taken in; the message is the reason kept with the dead letter."""


@dataclass(frozen=True, slots=True)
class Bounce:
    recipient: str
    status: str  # e.g. 5.1.1
    action: str  # failed, delayed, ...
    diagnostic: str

    @property
    def permanent(self) -> bool:
        return self.action == "failed" and self.status.startswith("5")


@dataclass(frozen=True, slots=True)
class Parsed:
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    from_addr: str
    from_name: str
    to_addrs: tuple[str, ...]
    subject: str
    date: datetime | None
    text: str  # the whole text part (HTML converted when there is none)
    reply_text: str  # quotes and signature removed, for the timeline
    auto_reply: bool
    bounces: tuple[Bounce, ...]
    attachments: tuple[str, ...]  # file names


def _ids(value: str | None) -> list[str]:
    return _MSGID.findall(value or "")[:MAX_REFS]


def _header(msg: Message, name: str) -> str:
    """A header as text (RFC 2047 encoded words decoded); '' when absent or undecodable."""
    raw = msg.get(name)
    if raw is None:
        return ""
    try:
        return str(make_header(decode_header(str(raw))))
    except (ValueError, LookupError, UnicodeError):
        return str(raw)


def _addr_list(msg: Message, name: str) -> list[tuple[str, str]]:
    try:
        values = [_header_text(v) for v in msg.get_all(name, [])]
    except (ValueError, TypeError, IndexError) as exc:
        raise BadMail(f"header {name}: {exc}") from exc
    return [(n, a.strip().lower()) for n, a in email.utils.getaddresses(values) if "@" in a]


def _header_text(value: object) -> str:
    try:
        return str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError):
        return str(value)


def _body_part(msg: Message) -> Message | None:
    """The first inline text/plain part, else the first text/html one."""
    html = None
    for part in msg.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain":
            return part
        if ctype == "text/html" and html is None:
            html = part
    return html


def _text_of(msg: Message) -> str:
    body = _body_part(msg)
    if body is None:
        return ""
    data = body.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    charset = body.get_content_charset() or "utf-8"
    try:
        content = data.decode(charset, errors="replace")
    except LookupError:
        content = data.decode("utf-8", errors="replace")
    if body.get_content_type() == "text/html":
        content = html_to_text(content)
    return content[:MAX_TEXT_CHARS]


def text_of(raw: bytes) -> str:
    """The text part of a message we made ourselves (no limits needed)."""
    return _text_of(email.message_from_bytes(raw))


def strip_reply(text: str) -> str:
    out: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.lstrip().startswith(">"):
            break
        if any(p.match(line) for p in _QUOTE_HEADERS):
            break
        if any(p.match(line) for p in _SIGNATURE):
            break
        out.append(line)
    stripped = "\n".join(out).strip()
    return stripped or text.strip()[:2000]


def _bounces(msg: Message) -> list[Bounce]:
    if msg.get_content_type() != "multipart/report":
        return []
    if str(msg.get_param("report-type", "")).lower() != "delivery-status":
        return []
    out: list[Bounce] = []
    for part in msg.get_payload() if msg.is_multipart() else []:
        if not isinstance(part, Message) or part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if isinstance(blocks, str):
            blocks = [
                email.message_from_string(b.strip() + "\n")
                for b in re.split(r"\n\s*\n", blocks)
                if b.strip()
            ]
        for block in blocks[1:] if isinstance(blocks, list) else []:
            if not isinstance(block, Message):
                continue
            rcpt = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
            rcpt = rcpt.split(";", 1)[-1].strip().lower()
            if "@" not in rcpt:
                continue
            out.append(
                Bounce(
                    recipient=rcpt,
                    status=str(block.get("Status") or "").strip(),
                    action=str(block.get("Action") or "").strip().lower(),
                    diagnostic=" ".join(str(block.get("Diagnostic-Code") or "").split())[:500],
                )
            )
    return out


def _auto_reply(msg: Message, subject: str) -> bool:
    auto = str(msg.get("Auto-Submitted") or "no").strip().lower()
    if auto != "no":
        return True
    if msg.get("X-Autoreply") or msg.get("X-Autorespond") or msg.get("X-Auto-Response-Suppress"):
        return True
    if str(msg.get("Precedence") or "").strip().lower() in ("auto_reply", "bulk", "junk"):
        return True
    return bool(_OOO_SUBJECT.match(subject))


def parse_mail(raw: bytes) -> Parsed:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise BadMail(f"message of {len(raw)} bytes is over the {MAX_MESSAGE_BYTES} byte limit")
    if not raw.strip():
        raise BadMail("empty message")
    try:
        # compat32: several times faster than the `default` policy's header objects; headers
        # are decoded (RFC 2047) only where they are used
        msg = email.message_from_bytes(raw)
    except Exception as exc:  # the email package raises many kinds on hostile input
        raise BadMail(f"unparseable: {type(exc).__name__}: {exc}") from exc
    if sum(1 for _ in msg.walk()) > MAX_PARTS:
        raise BadMail(f"more than {MAX_PARTS} MIME parts")
    try:
        subject = " ".join(_header(msg, "Subject").split())[:500]
        senders = _addr_list(msg, "From")
        if not senders:
            raise BadMail("no From address")
        from_name, from_addr = senders[0]
        to = tuple(a for _, a in _addr_list(msg, "To") + _addr_list(msg, "Cc"))
        mids = _ids(str(msg.get("Message-ID") or ""))
        irt = _ids(str(msg.get("In-Reply-To") or ""))
        refs = tuple(_ids(str(msg.get("References") or "")))
        date = None
        if msg.get("Date"):
            try:
                date = email.utils.parsedate_to_datetime(str(msg["Date"]))
                date = date.astimezone(UTC) if date.tzinfo else date.replace(tzinfo=UTC)
            except (TypeError, ValueError, IndexError):
                date = None
        text = _text_of(msg)
        attachments = tuple(
            (p.get_filename() or "attachment")[:200]
            for p in msg.walk()
            if p.get_content_disposition() == "attachment"
        )
        bounces = tuple(_bounces(msg))
    except BadMail:
        raise
    except Exception as exc:  # a header or part the email package cannot handle
        raise BadMail(f"malformed: {type(exc).__name__}: {exc}") from exc
    return Parsed(
        message_id=mids[0] if mids else None,
        in_reply_to=irt[0] if irt else None,
        references=refs,
        from_addr=from_addr,
        from_name=from_name,
        to_addrs=to,
        subject=subject,
        date=date,
        text=text,
        reply_text=strip_reply(text)[:MAX_TEXT_CHARS],
        auto_reply=_auto_reply(msg, subject) and not bounces,
        bounces=bounces,
        attachments=attachments,
    )


def normalise_subject(subject: str) -> str:
    """The thread's subject: reply/forward prefixes and list tags removed, lower-cased."""
    s = subject.strip()
    while True:
        n = re.sub(r"^(re|fw|fwd|aw|wg|sv|vs|tr)(\[\d+\])?\s*:\s*", "", s, flags=re.IGNORECASE)
        n = re.sub(r"^\[[^\]]{1,40}\]\s*", "", n)
        if n == s:
            return " ".join(s.lower().split())
        s = n
