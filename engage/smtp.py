"""The SMTP adapter (aiosmtplib): the embedded relay, or the server SMTP_URL names.

`smtp://user:pass@host:port` uses STARTTLS when the server offers it; `smtps://` is TLS
from the first byte. A server that cannot be reached or drops the connection raises
ChannelUnavailable (the job retries with backoff); a refusal of one message raises
aiosmtplib's error for that message only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiosmtplib

from engage.errors import ChannelUnavailable
from kernel.settings import Settings

TIMEOUT_S = 30.0


class SmtpRefused(Exception):
    """The server refused this message or recipient for good (5xx)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    tls: bool = False
    starttls: bool | None = None  # None: when offered
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpTarget:
        if settings.smtp_url is None:
            return cls("127.0.0.1", settings.smtp_port, starttls=False)
        u = urlsplit(settings.smtp_url)
        tls = u.scheme == "smtps"
        return cls(
            host=u.hostname or "127.0.0.1",
            port=u.port or (465 if tls else 587),
            tls=tls,
            starttls=None if not tls else False,
            username=unquote(u.username) if u.username else None,
            password=unquote(u.password) if u.password else None,
        )


@asynccontextmanager
async def open_smtp(t: SmtpTarget) -> AsyncIterator[aiosmtplib.SMTP]:
    client = aiosmtplib.SMTP(
        hostname=t.host, port=t.port, use_tls=t.tls, start_tls=t.starttls, timeout=TIMEOUT_S
    )
    try:
        await client.connect()
        if t.username and t.password:
            await client.login(t.username, t.password)
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise ChannelUnavailable(f"SMTP {t.host}:{t.port}: {exc}") from exc
    try:
        yield client
    finally:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()


async def send_raw(client: aiosmtplib.SMTP, sender: str, rcpt: str, raw: bytes) -> None:
    try:
        _errors, _response = await client.sendmail(sender, [rcpt], raw)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError, OSError) as exc:
        raise ChannelUnavailable(f"SMTP connection lost: {exc}") from exc
    except aiosmtplib.SMTPRecipientsRefused as exc:
        first = exc.recipients[0] if exc.recipients else None
        code = first.code if first is not None else 550
        text = first.message if first is not None else str(exc)
        if 400 <= code < 500:
            raise ChannelUnavailable(f"SMTP temporary failure {code}: {text}") from exc
        raise SmtpRefused(code, text) from exc
    except aiosmtplib.SMTPResponseException as exc:
        if 400 <= exc.code < 500:
            raise ChannelUnavailable(f"SMTP temporary failure {exc.code}: {exc.message}") from exc
        raise SmtpRefused(exc.code, exc.message) from exc
