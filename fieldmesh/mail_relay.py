"""The embedded SMTP relay: aiosmtpd on a loopback port, delivering into Dovecot over LMTP.

Run by `fieldmesh.svc_mail` as `python -m fieldmesh.mail_relay --port P --lmtp SOCK --db F`.
Every recipient is handed to Dovecot's LMTP (it answers per recipient whether the mailbox
exists). Refused recipients get a delivery status notification (RFC 3464,
multipart/report) delivered to the envelope sender's mailbox, as an MTA would send back.

Duplicate suppression: a message's (Message-ID, recipient) pairs are recorded in a small
SQLite file (synchronous=FULL) once Dovecot has taken them; a later message with the same
pair is acknowledged and not delivered again, so a sender re-sending after a crash (same
Message-ID, decided before its first attempt) never makes a second copy. Messages without
a Message-ID are delivered as they come.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import logging
import signal
import smtplib
import sqlite3
import threading
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("fieldmesh.mail_relay")

MAX_MESSAGE_BYTES = 25 * 1024 * 1024
RELAY_HOST = "fieldmesh-relay.local"


class Delivery:
    """LMTP connections (one per delivering thread, re-opened when one breaks) and the
    delivered-pairs record.

    Deliveries of different messages run in parallel (Dovecot takes several LMTP sessions;
    each fsyncs its own message). A (Message-ID, recipient) pair is claimed in memory
    while its delivery runs, so a second copy arriving meanwhile (a sender re-sending
    after a lost lease) gets a temporary failure and retries instead of being delivered
    twice; once delivered, the pair is recorded before the sender hears 250.
    """

    def __init__(self, lmtp_path: str, db_path: str) -> None:
        self.lmtp_path = lmtp_path
        self.db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS delivered (message_id TEXT, rcpt TEXT,"
            " PRIMARY KEY (message_id, rcpt))"
        )
        self.lock = threading.Lock()  # the SQLite connection and the in-flight set
        self.inflight: set[tuple[str, str]] = set()
        self._local = threading.local()

    def _conn(self) -> smtplib.LMTP:
        lm: smtplib.LMTP | None = getattr(self._local, "lmtp", None)
        if lm is None:
            lm = smtplib.LMTP(self.lmtp_path)
            lm.ehlo(RELAY_HOST)
            self._local.lmtp = lm
        return lm

    def _drop(self) -> None:
        lm: smtplib.LMTP | None = getattr(self._local, "lmtp", None)
        if lm is not None:
            with contextlib.suppress(Exception):
                lm.close()
        self._local.lmtp = None

    def deliver(
        self, mail_from: str, rcpts: list[str], data: bytes, message_id: str | None
    ) -> dict[str, str]:
        """Deliver to each recipient not yet delivered; the refused ones with the reason.

        Raises InFlight when a recipient's copy of this message is being delivered by
        another session right now."""
        with self.lock:
            todo = [r for r in rcpts if not (message_id and self._seen(message_id, r))]
            if not todo:
                return {}
            claims = {(message_id, r) for r in todo} if message_id else set()
            if claims & self.inflight:
                raise InFlight(message_id or "")
            self.inflight |= claims
        try:
            refused = self._lmtp_send(mail_from, todo, data)
            if message_id:
                with self.lock:
                    self.db.executemany(
                        "INSERT OR IGNORE INTO delivered VALUES (?, ?)",
                        [(message_id, r) for r in todo if r not in refused],
                    )
            return refused
        finally:
            if claims:
                with self.lock:
                    self.inflight -= claims

    def _lmtp_send(self, mail_from: str, todo: list[str], data: bytes) -> dict[str, str]:
        for attempt in (1, 2):
            try:
                errors = self._conn().sendmail(mail_from, todo, data)
                return {r: f"{c} {m.decode(errors='replace')}" for r, (c, m) in errors.items()}
            except smtplib.SMTPRecipientsRefused as exc:
                with contextlib.suppress(Exception):
                    self._conn().rset()
                return {
                    r: f"{c} {m.decode(errors='replace')}" for r, (c, m) in exc.recipients.items()
                }
            except (smtplib.SMTPServerDisconnected, OSError):
                self._drop()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _seen(self, message_id: str, rcpt: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM delivered WHERE message_id = ? AND rcpt = ?", (message_id, rcpt)
        ).fetchone()
        return row is not None


class InFlight(Exception):
    """The same message to the same recipient is being delivered by another session."""


def build_dsn(mail_from: str, refused: dict[str, str], original: bytes) -> Message:
    """A multipart/report; report-type=delivery-status for the refused recipients."""
    headers = BytesHeaderParser(policy=default_policy).parsebytes(original)
    msg = MIMEMultipart("report", report_type="delivery-status")
    msg["From"] = f"Mail Delivery System <MAILER-DAEMON@{RELAY_HOST}>"
    msg["To"] = mail_from
    msg["Subject"] = "Undelivered Mail Returned to Sender"
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = email.utils.make_msgid(domain=RELAY_HOST)
    msg["Auto-Submitted"] = "auto-replied"
    if headers.get("Message-ID"):
        msg["In-Reply-To"] = str(headers["Message-ID"])
        msg["References"] = str(headers["Message-ID"])
    text = "Your message could not be delivered to:\n\n" + "\n".join(
        f"  {r}: {why}" for r, why in refused.items()
    )
    msg.attach(MIMEText(text, "plain", "utf-8"))
    # message/delivery-status: a block of per-message fields, then one block per recipient
    blocks: list[Message | str] = []
    per_msg = Message()
    per_msg["Reporting-MTA"] = f"dns; {RELAY_HOST}"
    blocks.append(per_msg)
    for r, why in refused.items():
        block = Message()
        block["Final-Recipient"] = f"rfc822; {r}"
        block["Action"] = "failed"
        block["Status"] = "5.1.1" if why.startswith("5") else "4.0.0"
        block["Diagnostic-Code"] = f"smtp; {why}"
        blocks.append(block)
    ds = MIMEBase("message", "delivery-status")
    ds.set_payload(blocks)
    msg.attach(ds)
    head = original.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("utf-8", "replace")
    msg.attach(MIMEText(head, "rfc822-headers", "utf-8"))
    return msg


class RelayHandler:
    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        if isinstance(envelope.content, bytes):
            data = envelope.content
        headers = BytesHeaderParser(policy=default_policy).parsebytes(data)
        mid = str(headers.get("Message-ID") or "").strip() or None
        mail_from = envelope.mail_from or ""
        rcpts = [r.lower() for r in envelope.rcpt_tos]
        try:
            refused = await asyncio.to_thread(self.delivery.deliver, mail_from, rcpts, data, mid)
        except InFlight:
            return "451 4.4.5 this message is being delivered by another session, try again"
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("relay: LMTP delivery failed: %s", exc)
            return "451 4.3.0 local delivery unavailable, try again"
        if refused:
            log.info("relay: refused %s for %s", sorted(refused), mid)
            if mail_from and not headers.get("Auto-Submitted", "no").startswith("auto"):
                dsn = build_dsn(mail_from, refused, data)
                dsn_bytes = dsn.as_bytes().replace(b"\n", b"\r\n")
                with contextlib.suppress(OSError, smtplib.SMTPException, InFlight):
                    await asyncio.to_thread(
                        self.delivery.deliver,
                        "",
                        [mail_from.lower()],
                        dsn_bytes,
                        str(dsn["Message-ID"]),
                    )
        return "250 2.0.0 OK"


async def serve(port: int, lmtp: str, db: str) -> None:
    delivery = Delivery(lmtp, db)
    handler = RelayHandler(delivery)
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=MAX_MESSAGE_BYTES,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=RELAY_HOST,
            ident="fieldmesh relay",
        )

    server = await loop.create_server(factory, host="127.0.0.1", port=port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("relay on 127.0.0.1:%d -> LMTP %s", port, lmtp)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fieldmesh.mail_relay")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--lmtp", required=True)
    ap.add_argument("--db", required=True)
    args: Any = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per command
    asyncio.run(serve(args.port, args.lmtp, args.db))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
