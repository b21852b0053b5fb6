"""Templates and MIME messages (pure: no I/O).

A template is plain HTML (its <style> rules are inlined into `style` attributes once per
template by premailer, with network and file access off) plus an optional text part; the
text part is derived from the HTML when absent. Merge fields are `{{ path.to.value }}`
looked up in a nested mapping (`contact.first_name`, `account.name`, `sender.name`,
`unsubscribe_url`). A value is HTML-escaped in the HTML part, kept as text in the text
part, and folded onto one line in the subject; an unknown field renders empty and is
reported, never an error at send time.

`build_message` makes the whole RFC 5322 message: From, To, Subject, Date, the Message-ID
decided by the caller, In-Reply-To/References for threading, List-Unsubscribe with
List-Unsubscribe-Post (RFC 8058 one-click), multipart/alternative text+HTML, attachments.
`dkim_sign` signs it with dkimpy when a deployment configures a key.
"""

from __future__ import annotations

import email.utils
import functools
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from html.parser import HTMLParser
from typing import Any

FIELD_RE = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*(?:\.[a-zA-Z_][a-zA-Z0-9_]*)*)\s*\}\}")
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_ATTACHMENTS_TOTAL_BYTES = 20 * 1024 * 1024


class RenderError(ValueError):
    """A template or message that cannot be made (names what is wrong)."""


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str  # maintype/subtype
    data: bytes


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    html: str
    text: str
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Envelope:
    """Everything about one e-mail except its body."""

    from_addr: str
    from_name: str | None
    to_addr: str
    to_name: str | None
    message_id: str
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    extra_headers: tuple[tuple[str, str], ...] = field(default=())


def _lookup(values: Mapping[str, Any], path: str) -> Any:
    cur: Any = values
    for part in path.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


def merge(template: str, values: Mapping[str, Any], *, escape: bool) -> tuple[str, list[str]]:
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        v = _lookup(values, m.group(1))
        if v is None or isinstance(v, Mapping | list):
            missing.append(m.group(1))
            return ""
        text = str(v)
        return html.escape(text, quote=True) if escape else text

    return FIELD_RE.sub(sub, template), missing


@functools.lru_cache(maxsize=256)
def inline_css(html_text: str) -> str:
    """<style> rules into style attributes (once per template text; cached)."""
    import premailer  # imported here: lxml and cssutils take a while to import

    try:
        return str(
            premailer.Premailer(
                html_text,
                allow_network=False,
                allow_loading_external_files=False,
                preserve_handlebar_syntax=True,
                disable_validation=True,
                cssutils_logging_level=50,
            ).transform()
        )
    except Exception as exc:  # premailer raises lxml/cssutils errors of many kinds
        raise RenderError(f"html: cannot inline its CSS: {exc}") from exc


class _Text(HTMLParser):
    BLOCK = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table", "ul", "ol"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head"):
            self.skip += 1
        if tag in self.BLOCK:
            self.out.append("\n")
        if tag == "a":
            self.href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head"):
            self.skip = max(0, self.skip - 1)
        if tag == "a" and self.href and not self.href.startswith("mailto:"):
            self.out.append(f" <{self.href}>")
            self.href = None
        if tag in self.BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(data)


def html_to_text(html_text: str) -> str:
    p = _Text()
    p.feed(html_text)
    p.close()
    text = re.sub(r"[ \t]+", " ", "".join(p.out))
    return re.sub(r"\n\s*\n+", "\n\n", text).strip() + "\n"


def render(subject: str, html_text: str, text: str | None, values: Mapping[str, Any]) -> Rendered:
    inlined = inline_css(html_text)
    out_html, miss1 = merge(inlined, values, escape=True)
    out_subject, miss2 = merge(subject, values, escape=False)
    out_subject = " ".join(out_subject.split())  # no CR/LF into a header
    if text is not None:
        out_text, miss3 = merge(text, values, escape=False)
    else:
        out_text, miss3 = html_to_text(out_html), []
    missing = tuple(dict.fromkeys(miss1 + miss2 + miss3))
    return Rendered(out_subject, out_html, out_text, missing)


def build_message(
    env: Envelope, body: Rendered, attachments: Sequence[Attachment] = ()
) -> EmailMessage:
    total = 0
    for a in attachments:
        if len(a.data) > MAX_ATTACHMENT_BYTES:
            raise RenderError(f"attachment {a.filename!r} is over {MAX_ATTACHMENT_BYTES} bytes")
        total += len(a.data)
        if "/" not in a.content_type:
            raise RenderError(f"attachment {a.filename!r}: content type {a.content_type!r}")
    if total > MAX_ATTACHMENTS_TOTAL_BYTES:
        raise RenderError(f"attachments total over {MAX_ATTACHMENTS_TOTAL_BYTES} bytes")
    msg = EmailMessage(policy=SMTP)
    msg["From"] = email.utils.formataddr((env.from_name or "", env.from_addr))
    msg["To"] = email.utils.formataddr((env.to_name or "", env.to_addr))
    msg["Subject"] = body.subject
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = env.message_id
    if env.in_reply_to:
        msg["In-Reply-To"] = env.in_reply_to
    refs = list(env.references)
    if env.in_reply_to and env.in_reply_to not in refs:
        refs.append(env.in_reply_to)
    if refs:
        msg["References"] = " ".join(refs[-20:])
    if env.unsubscribe_url:
        parts = [f"<{env.unsubscribe_url}>"]
        if env.unsubscribe_mailto:
            parts.append(f"<mailto:{env.unsubscribe_mailto}>")
        msg["List-Unsubscribe"] = ", ".join(parts)
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in env.extra_headers:
        msg[name] = value
    msg.set_content(body.text)
    msg.add_alternative(body.html, subtype="html")
    for a in attachments:
        maintype, subtype = a.content_type.split("/", 1)
        msg.add_attachment(a.data, maintype=maintype, subtype=subtype, filename=a.filename)
    return msg


def make_message_id(domain: str) -> str:
    return email.utils.make_msgid(domain=domain)


def dkim_sign(raw: bytes, *, selector: str, domain: str, private_key_pem: bytes) -> bytes:
    """The message with a DKIM-Signature header prepended (relaxed/relaxed, rsa-sha256)."""
    import dkim

    sig = dkim.sign(
        raw,
        selector.encode(),
        domain.encode(),
        private_key_pem,
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id", b"list-unsubscribe"],
    )
    return bytes(sig) + raw
