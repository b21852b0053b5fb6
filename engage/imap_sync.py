"""IMAP sync of a connected mailbox (imapclient; the only module that imports it).

Incremental by UID: the mailbox row keeps UIDVALIDITY and the last UID taken in. A sync
selects the folder read-only (STATUS-free: SELECT gives UIDVALIDITY, UIDNEXT and, with
CONDSTORE, HIGHESTMODSEQ); when UIDNEXT says nothing arrived it ends there (an empty sync
is one login and one SELECT). Otherwise it fetches the new UIDs in batches: a message over
the size limit is fetched as its header only and kept as a dead letter with its size; the
others are taken in (`engage.inbound.take_in`) by SYNC_LANES concurrent transactions
(one sender's messages in one lane), and the new last UID is committed once they all
committed, so a crash repeats at most one batch, which the messages' unique ids make
harmless.
A changed UIDVALIDITY (the folder was rebuilt) starts again from UID 1, again without
duplicates. `watch` keeps an IDLE session per mailbox and syncs as soon as the server
announces a new message. Dovecot announces a change only 500 ms after it saw it (a fixed
delay in its mailbox watcher, batching bursts); for the embedded Dovecot, whose Maildirs
are local, `watch` also looks at each Maildir's `new/` directory every MAILDIR_POLL_S and
syncs when a delivery renamed a message into it, which is what Dovecot's own watcher
reacts to, without the delay. External servers are followed by IDLE alone.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from engage import accounts, timeline
from engage.errors import ChannelUnavailable
from engage.inbound import dead_letter, take_in
from engage.leads import LeadRule
from engage.parse import MAX_MESSAGE_BYTES
from kernel import secretbox
from kernel.settings import Settings

log = logging.getLogger(__name__)

FETCH_BATCH = 500
TIMEOUT_S = 30.0
MAILDIR_POLL_S = 0.05
SYNC_LANES = 3  # concurrent transactions taking in one fetched batch
LANE_MIN = 50


@dataclass(frozen=True, slots=True)
class ImapAccount:
    host: str
    port: int
    tls: bool
    user: str
    password: str
    folder: str = "INBOX"


def account_of(row: dict[str, Any], settings: Settings) -> ImapAccount:
    """A mailbox row's IMAP account: its own server, or IMAP_URL's, or the embedded one."""
    host, port, tls = row.get("imap_host"), row.get("imap_port"), bool(row.get("imap_tls"))
    if not host:
        if settings.imap_url:
            u = urlsplit(settings.imap_url)
            tls = u.scheme == "imaps"
            host, port = u.hostname or "127.0.0.1", u.port or (993 if tls else 143)
        else:
            host, port, tls = "127.0.0.1", settings.imap_port, False
    return ImapAccount(
        host=str(host),
        port=int(port or 143),
        tls=tls,
        user=unquote(str(row.get("imap_user") or row["address"])),
        password=secretbox.open_(settings, str(row.get("imap_password") or "")),
        folder=str(row.get("folder") or "INBOX"),
    )


def connect(acct: ImapAccount) -> IMAPClient:
    try:
        client = IMAPClient(acct.host, port=acct.port, ssl=acct.tls, timeout=TIMEOUT_S)
        client.login(acct.user, acct.password)
    except (IMAPClientError, OSError) as exc:
        raise ChannelUnavailable(f"IMAP {acct.host}:{acct.port} as {acct.user}: {exc}") from exc
    return client


@dataclass(frozen=True, slots=True)
class SyncResult:
    mailbox_id: int
    fetched: int
    stored: int
    dead: int
    last_uid: int
    uidvalidity: int


async def _row(conn: AsyncConnection[Any], mailbox_id: int) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT * FROM engage_mailboxes WHERE id = %s", (mailbox_id,))
    row = await cur.fetchone()
    if row is None:
        raise LookupError(f"mailbox {mailbox_id} not found")
    return row


async def sync_mailbox(
    pool: AsyncConnectionPool[Any],
    settings: Settings,
    mailbox_id: int,
    *,
    client: IMAPClient | None = None,
) -> SyncResult:
    """One incremental sync (see the module's docstring). With `client` (an IDLE watcher's
    second session) it reuses that logged-in connection."""
    async with pool.connection() as conn:
        row = await _row(conn, mailbox_id)
    acct = account_of(row, settings)
    own = client is None
    c = client if client is not None else await asyncio.to_thread(connect, acct)
    try:
        try:
            sel = await asyncio.to_thread(c.select_folder, acct.folder, True)
        except (IMAPClientError, OSError) as exc:
            raise ChannelUnavailable(f"IMAP select {acct.folder}: {exc}") from exc
        uidvalidity = int(sel[b"UIDVALIDITY"])
        uidnext = int(sel.get(b"UIDNEXT", 0))
        last_uid = int(row["last_uid"]) if row["uidvalidity"] == uidvalidity else 0
        modseq = sel.get(b"HIGHESTMODSEQ")
        if uidnext and uidnext - 1 <= last_uid:
            async with pool.connection() as conn:
                await conn.execute(
                    "UPDATE engage_mailboxes SET last_sync_at = now(), last_error = NULL,"
                    " highestmodseq = %s WHERE id = %s",
                    (int(modseq) if modseq is not None else None, mailbox_id),
                )
            return SyncResult(mailbox_id, 0, 0, 0, last_uid, uidvalidity)
        uids = await asyncio.to_thread(c.search, ["UID", f"{last_uid + 1}:*"])
        uids = sorted(u for u in uids if u > last_uid)
        fetched = stored = dead = 0
        for i in range(0, len(uids), FETCH_BATCH):
            chunk = uids[i : i + FETCH_BATCH]
            sizes = await asyncio.to_thread(c.fetch, chunk, ["RFC822.SIZE"])
            small = [
                u
                for u in chunk
                if int(sizes.get(u, {}).get(b"RFC822.SIZE", 0)) <= MAX_MESSAGE_BYTES
            ]
            big = [u for u in chunk if u not in set(small)]
            bodies = await asyncio.to_thread(c.fetch, small, ["BODY.PEEK[]"]) if small else {}
            heads = await asyncio.to_thread(c.fetch, big, ["BODY.PEEK[HEADER]"]) if big else {}
            async with pool.connection() as conn:
                senders = [_from_of(bodies.get(u, {}).get(b"BODY[]", b"")) for u in small]
                links = await timeline.link_addresses(conn, [s for s in senders if s])
            lanes = _lanes(chunk, small, senders)

            batch = _Batch(
                mailbox_id,
                row["address"],
                uidvalidity,
                sizes,
                bodies,
                heads,
                links,
                LeadRule.of(row),
                row.get("kind") == "team",
            )
            taken = await asyncio.gather(*(_take_lane(pool, batch, ln) for ln in lanes))
            for got_stored, got_dead in taken:
                stored += got_stored
                dead += got_dead
            fetched += len(chunk)
            async with pool.connection() as conn:
                await conn.execute(
                    "UPDATE engage_mailboxes SET uidvalidity = %s, last_uid = %s,"
                    " highestmodseq = %s, last_sync_at = now(), last_error = NULL WHERE id = %s",
                    (
                        uidvalidity,
                        chunk[-1],
                        int(modseq) if modseq is not None else None,
                        mailbox_id,
                    ),
                )
        return SyncResult(
            mailbox_id, fetched, stored, dead, uids[-1] if uids else last_uid, uidvalidity
        )
    finally:
        if own:
            await asyncio.to_thread(_logout, c)


def _from_of(raw: bytes) -> str | None:
    """The From address of a raw message, cheaply (for linking a whole batch at once)."""
    import email.utils

    head = raw[: raw.find(b"\r\n\r\n") if b"\r\n\r\n" in raw else 8192]
    for line in head.split(b"\r\n"):
        if line[:5].lower() == b"from:":
            _, addr = email.utils.parseaddr(line[5:].decode("utf-8", "replace"))
            return addr.lower() or None
    return None


@dataclass(frozen=True, slots=True)
class _Batch:
    mailbox_id: int
    address: str
    uidvalidity: int
    sizes: dict[int, Any]
    bodies: dict[int, Any]
    heads: dict[int, Any]
    links: dict[str, timeline.Link]
    lead_rule: LeadRule | None
    team: bool


async def _take_lane(pool: AsyncConnectionPool[Any], b: _Batch, lane: list[int]) -> tuple[int, int]:
    """Take in one lane's messages in one transaction; (stored, dead)."""
    stored = dead = 0
    async with pool.connection() as conn, conn.transaction():
        for u in lane:
            if u in b.heads or u not in b.bodies:
                size = int(b.sizes.get(u, {}).get(b"RFC822.SIZE", 0))
                await dead_letter(
                    conn,
                    mailbox_id=b.mailbox_id,
                    uid=u,
                    reason=f"message of {size} bytes is over the {MAX_MESSAGE_BYTES} byte limit"
                    " (header kept; the message stays on the server)",
                    raw=b.heads.get(u, {}).get(b"BODY[HEADER]", b""),
                )
                dead += 1
                continue
            outcome = await take_in(
                conn,
                mailbox_id=b.mailbox_id,
                mailbox_address=b.address,
                uid=u,
                uidvalidity=b.uidvalidity,
                raw=bytes(b.bodies[u][b"BODY[]"]),
                links=b.links,
                lead_rule=b.lead_rule,
                team_mailbox=b.team,
            )
            stored += outcome == "stored"
            dead += outcome == "dead"
    return stored, dead


def _lanes(chunk: list[int], small: list[int], senders: list[str | None]) -> list[list[int]]:
    """A batch split for SYNC_LANES concurrent transactions: one sender's messages always in
    one lane (their conversation is written by one transaction), UID order kept in a lane.
    A batch under LANE_MIN (what IDLE brings: a few new messages) stays one lane."""
    if len(chunk) < LANE_MIN:
        return [chunk]
    sender_of = dict(zip(small, senders, strict=True))
    lanes: list[list[int]] = [[] for _ in range(SYNC_LANES)]
    for u in chunk:
        lanes[zlib.crc32((sender_of.get(u) or "").encode()) % SYNC_LANES].append(u)
    return [ln for ln in lanes if ln]


def _logout(c: IMAPClient) -> None:
    try:
        c.logout()
    except (IMAPClientError, OSError):
        c.shutdown()


async def sync_all(pool: AsyncConnectionPool[Any], settings: Settings) -> list[SyncResult]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT id FROM engage_mailboxes ORDER BY id")
        ids = [int(r[0]) for r in await cur.fetchall()]
    out = []
    for mid in ids:
        try:
            out.append(await sync_mailbox(pool, settings, mid))
        except ChannelUnavailable as exc:
            log.warning("engage: mailbox %s: %s", mid, exc)
            async with pool.connection() as conn:
                await conn.execute(
                    "UPDATE engage_mailboxes SET last_error = %s WHERE id = %s",
                    (str(exc)[:500], mid),
                )
    return out


# --------------------------------------------------------------------------- IDLE


def _idle_loop(acct: ImapAccount, wake: Callable[[], None], stop: threading.Event) -> None:
    """One IDLE session: call `wake` whenever the server reports EXISTS/RECENT."""
    while not stop.is_set():
        try:
            c = connect(acct)
        except ChannelUnavailable as exc:
            log.warning("engage: IDLE: %s", exc)
            stop.wait(5.0)
            continue
        try:
            c.select_folder(acct.folder, readonly=True)
            wake()  # whatever arrived while we were not idling
            while not stop.is_set():
                c.idle()
                responses = c.idle_check(timeout=1.0)
                c.idle_done()
                if any(len(r) >= 2 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    wake()
        except (IMAPClientError, OSError) as exc:
            log.warning("engage: IDLE on %s lost: %s", acct.user, exc)
        finally:
            _logout(c)


def local_maildir(row: dict[str, Any], settings: Settings) -> Path | None:
    """The embedded Dovecot's Maildir of a mailbox row (None for a mailbox elsewhere)."""
    if row.get("imap_host") or settings.imap_url or not settings.embedded_mail:
        return None
    return accounts.maildir_of(settings, str(row["address"]))


def _maildir_loop(dirs: dict[Path, Callable[[], None]], stop: threading.Event) -> None:
    """Wake a mailbox's syncer when its Maildir's new/ changes (a local delivery)."""
    seen: dict[Path, int] = {}
    while not stop.wait(MAILDIR_POLL_S):
        for d, wake in dirs.items():
            try:
                stamp = (d / "new").stat().st_mtime_ns
            except OSError:
                continue  # not created until the first delivery
            if seen.setdefault(d, stamp) != stamp:
                seen[d] = stamp
                wake()


async def watch(
    pool: AsyncConnectionPool[Any],
    settings: Settings,
    stop: asyncio.Event,
    *,
    on_sync: Callable[[SyncResult], Awaitable[None]] | None = None,
    duration_s: float | None = None,
) -> None:
    """Keep every connected mailbox in sync through IDLE until `stop` (or `duration_s`)."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT * FROM engage_mailboxes ORDER BY id")
        rows = await cur.fetchall()
    if not rows:
        return  # nothing to watch; the next periodic run looks again
    loop = asyncio.get_running_loop()
    thread_stop = threading.Event()
    pending: dict[int, asyncio.Event] = {r["id"]: asyncio.Event() for r in rows}
    threads = []
    for r in rows:
        ev = pending[r["id"]]
        t = threading.Thread(
            target=_idle_loop,
            args=(
                account_of(r, settings),
                lambda ev=ev: loop.call_soon_threadsafe(ev.set),
                thread_stop,
            ),
            name=f"imap-idle-{r['id']}",
            daemon=True,
        )
        t.start()
        threads.append(t)
    maildirs = {
        md: (lambda ev=pending[r["id"]]: loop.call_soon_threadsafe(ev.set))
        for r in rows
        if (md := local_maildir(r, settings)) is not None
    }
    if maildirs:
        t = threading.Thread(
            target=_maildir_loop, args=(maildirs, thread_stop), name="maildir-watch", daemon=True
        )
        t.start()
        threads.append(t)

    async def syncer(mailbox_id: int, ev: asyncio.Event) -> None:
        acct = account_of(next(r for r in rows if r["id"] == mailbox_id), settings)
        client: IMAPClient | None = None
        while not stop.is_set():
            await ev.wait()
            ev.clear()
            try:
                if client is None:
                    client = await asyncio.to_thread(connect, acct)
                res = await sync_mailbox(pool, settings, mailbox_id, client=client)
                if on_sync is not None:
                    await on_sync(res)
            except (ChannelUnavailable, IMAPClientError, OSError, PoolTimeout) as exc:
                # PoolTimeout: many mailboxes catching up at once (3 lanes each); try again
                log.warning("engage: sync of mailbox %s failed: %s", mailbox_id, exc)
                if client is not None:
                    await asyncio.to_thread(_logout, client)
                client = None
                await asyncio.sleep(1.0)
                ev.set()
        if client is not None:
            await asyncio.to_thread(_logout, client)

    syncers = [asyncio.create_task(syncer(mid, ev)) for mid, ev in pending.items()]
    started = time.monotonic()
    try:
        while not stop.is_set():
            if duration_s is not None and time.monotonic() - started > duration_s:
                break
            await asyncio.sleep(0.2)
    finally:
        thread_stop.set()
        for s in syncers:
            s.cancel()
        await asyncio.gather(*syncers, return_exceptions=True)
        for th in threads:
            await asyncio.to_thread(th.join, 5.0)
