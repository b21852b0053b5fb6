"""Two-way sync of one user's calendar with a CalDAV server: one round.

A round, under a per-user advisory lock (two workers never sync one user at once):

1. project the CRM onto `cal_events` (project.py): local changes bump `local_rev`;
2. pull: a sync-collection REPORT from the stored sync token lists what changed on the
   server. An entry whose ETag is the one we stored is our own write coming back and is
   skipped; the others are fetched (calendar-multiget) and applied by UID:
   - an unknown UID becomes a CRM activity (type meeting, source `caldav`, linked to
     the contact with an attendee's e-mail address) and its event;
   - a known one is merged with the CRM side by the conflict rule (merge.py: per field
     group, last writer wins; the CRM wins for work orders, visits and cadences);
   - a deleted one deletes the CRM activity (CRM-owned events are put back instead);
3. push: every event with `local_rev > pushed_rev` is PUT (`If-None-Match: *` when new,
   `If-Match: <etag>` otherwise), every `deleted` one is DELETEd (`If-Match`). A 412
   means the server copy changed meanwhile: the next pull merges it. A new event whose
   UID the server already has (a PUT that succeeded before a crash) is adopted, never
   duplicated;
4. if anything was pushed, pull once more, so the token moves past our own writes.

Deletions win over a concurrent edit, both ways. Every step commits what it applied
before the sync token moves, and every step is idempotent (UIDs are unique per user,
inbound activities are unique by (source, source_ref), writes are conditional), so a
round replayed after a crash or a restart makes no duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from calendars import itip, server
from calendars.caldav_client import CalDav, Changes
from calendars.ical import parse_calendar, to_ics
from calendars.merge import CRM_OWNED_KINDS, merge
from calendars.model import CalendarError, EventData, with_content
from calendars.project import ProjectionStats, project
from calendars.store import Account, Conn, base_json, load_events, write_content
from crm import store as crm_store
from crm.entities import ACTIVITIES
from crm.errors import CrmError
from identity.auth import load_principal
from kernel import secretbox
from kernel.errors import ApiError
from kernel.principal import Principal
from kernel.settings import Settings

log = logging.getLogger(__name__)

_LOCK_CLASS = 0x63616C  # "cal"
APPLY_BATCH = 500
PUSH_BATCH = 500
# a first upload of at least this many new events into an empty calendar goes in one
# whole-calendar PUT where the server takes it (the embedded Radicale)
BULK_MIN = 200
BULK_MAX_BYTES = 16 * 1024 * 1024  # under the embedded server's max_content_length
INBOUND_SOURCE = "caldav"


@dataclass(slots=True)
class RoundStats:
    projected: ProjectionStats = field(default_factory=ProjectionStats)
    pulled_new: int = 0
    pulled_changed: int = 0
    pulled_deleted: int = 0
    echoes: int = 0
    pushed: int = 0
    deleted_remote: int = 0
    conflicts: int = 0
    bulk: int = 0  # of `pushed`, written in one whole-calendar PUT
    report_skipped: bool = False  # the embedded server's change marker had not moved
    bad_objects: int = 0
    skipped: bool = False  # not opted in, or another round of this user was running
    busy: bool = False  # skipped because another round of this user was running
    duration_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=dict)  # connect, project, pull, push


class ClientPool:
    """CalDAV clients kept between rounds (one per server and account), so that a round
    reuses its HTTP connections; a worker keeps one pool for its life."""

    def __init__(
        self,
        factory: Callable[[Account], CalDav] | None = None,
        *,
        settings: Settings | None = None,
    ) -> None:
        """`settings` open the sealed passwords (kernel.secretbox) and name the embedded
        server, whose accounts may upload a whole calendar at once (a PUT on the
        collection is Radicale's, not CalDAV's). Without them, stored passwords must be
        unsealed (pure tests)."""
        self._settings = settings
        self._factory = factory or self._client
        self._clients: dict[tuple[str, str, str], CalDav] = {}

    def _client(self, a: Account) -> CalDav:
        s = self._settings
        embedded = s is not None and s.embedded_caldav and a.server_url == s.caldav_base_url
        state_dir = s.state_dir if s is not None else None
        return CalDav(
            a.server_url,
            a.username,
            secretbox.open_(s, a.password) if s is not None else a.password,
            bulk_create=embedded,
            change_stamp=(
                (lambda: server.change_stamp(state_dir, a.username))
                if embedded and state_dir is not None
                else None
            ),
        )

    def get(self, acct: Account) -> CalDav:
        key = (acct.server_url, acct.username, acct.password)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._factory(acct)
        return client

    def drop(self, acct: Account) -> None:
        client = self._clients.pop((acct.server_url, acct.username, acct.password), None)
        if client is not None:
            client.close()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def source_ref(user_id: int, uid: str) -> str:
    ref = f"{user_id}:{uid}"
    if len(ref) <= 200:
        return ref
    return f"{user_id}:sha256:{hashlib.sha256(uid.encode()).hexdigest()}"


class _Round:
    def __init__(self, conn: Conn, acct: Account, client: CalDav, tenant: str) -> None:
        self.conn = conn
        self.acct = acct
        self.client = client
        self.tenant = tenant
        self.stats = RoundStats()
        self.path = ""
        self.user_tz = "UTC"
        self.principal: Principal | None = None
        self.token = acct.sync_token
        self.stamp = acct.server_stamp

    # ----------------------------------------------------------------- CRM side

    async def _owner(self) -> Principal:
        if self.principal is None:
            p = await load_principal(self.conn, self.acct.user_id)
            if p is None:
                raise CrmError(f"user {self.acct.user_id} is not active", status=409)
            self.principal = p
        return self.principal

    def _activity_values(self, ev: EventData) -> dict[str, Any]:
        return {
            "subject": (ev.summary or "(no title)")[:500],
            "body": ev.description or None,
            "start_at": ev.start,
            "end_at": ev.end,
            "tz": ev.tz,
        }

    async def _create_activity(self, ev: EventData) -> int:
        ref = source_ref(self.acct.user_id, ev.uid)
        cur = await self.conn.execute(
            "SELECT id FROM activities WHERE source = %s AND source_ref = %s",
            (INBOUND_SOURCE, ref),
        )
        row = await cur.fetchone()
        if row is not None:  # applied before, its event row lost: reuse
            return int(row[0])
        p = await self._owner()
        values: dict[str, Any] = {
            "type": "meeting",
            **self._activity_values(ev),
            "status": "cancelled" if ev.status == "CANCELLED" else "open",
            "owner_id": self.acct.user_id,
            "source": INBOUND_SOURCE,
            "source_ref": ref,
        }
        emails = [a.email for a in ev.attendees if a.email != (ev.organizer or "")]
        if emails:
            cur = await self.conn.execute(
                "SELECT id FROM contacts WHERE email_normalized = ANY (%s) AND merged_into_id IS NULL "
                "ORDER BY id LIMIT 5",
                (emails,),
            )
            for (contact_id,) in await cur.fetchall():
                try:
                    await crm_store.check_visible_refs(
                        self.conn, ACTIVITIES, p, {"contact_id": contact_id}
                    )
                except ApiError:
                    continue  # a contact the owner may not see is not linked
                values["contact_id"] = contact_id
                break
        new = await crm_store.create_record(self.conn, ACTIVITIES, p, values)
        return int(new["id"])

    async def _update_activity(self, activity_id: int, ev: EventData) -> None:
        p = await self._owner()
        cur = await self.conn.execute(
            "SELECT start_at, due_at, status FROM activities WHERE id = %s", (activity_id,)
        )
        row = await cur.fetchone()
        if row is None:
            return
        values = self._activity_values(ev)
        if row[0] is None and row[1] is not None:  # a task with a due time: move the due time
            values["due_at"] = values.pop("start_at")
            values.pop("end_at")
        if ev.status == "CANCELLED" and row[2] != "cancelled":
            values["status"] = "cancelled"
        elif ev.status != "CANCELLED" and row[2] == "cancelled":
            values["status"] = "open"
        await crm_store.update_record(
            self.conn, ACTIVITIES, p, activity_id, values, None, check_etag=False
        )

    async def _delete_activity(self, activity_id: int) -> None:
        p = await self._owner()
        try:
            await crm_store.delete_record(self.conn, ACTIVITIES, p, activity_id, "*")
        except ApiError as exc:
            log.info("calendar sync: activity %s not deleted: %s", activity_id, exc)

    # ----------------------------------------------------------------- pull

    async def pull(self) -> None:
        # the embedded server's marker, read before the REPORT: unchanged since the last
        # REPORT's, the server holds nothing new (a write after this read moves it again)
        stamp = self.client.change_stamp() if self.client.change_stamp else None
        if stamp not in (None, "none") and self.token is not None and stamp == self.stamp:
            self.stats.report_skipped = True
            return
        ch: Changes = await asyncio.to_thread(self.client.changes, self.path, self.token)
        if not ch.changed and not ch.deleted and not ch.full:
            if ch.token != self.token or stamp != self.stamp:
                self.token, self.stamp = ch.token, stamp
                await self.conn.execute(
                    "UPDATE cal_accounts SET sync_token = %s, server_stamp = %s WHERE user_id = %s",
                    (ch.token, stamp, self.acct.user_id),
                )
            return
        hrefs = [h for h, _ in ch.changed]
        cur = await self.conn.execute(
            "SELECT href, etag FROM cal_events WHERE owner_id = %s AND href = ANY (%s)",
            (self.acct.user_id, hrefs),
        )
        known = {h: et for h, et in await cur.fetchall()}
        need = [h for h, et in ch.changed if et is None or known.get(h, "\0") != et]
        self.stats.echoes += len(ch.changed) - len(need)
        deleted = set(ch.deleted)
        if ch.full:
            cur = await self.conn.execute(
                "SELECT href FROM cal_events WHERE owner_id = %s AND href IS NOT NULL",
                (self.acct.user_id,),
            )
            listed = set(hrefs)
            deleted |= {h for (h,) in await cur.fetchall() if h not in listed}
        for i in range(0, len(need), APPLY_BATCH):
            fetched = await asyncio.to_thread(
                self.client.fetch, self.path, need[i : i + APPLY_BATCH]
            )
            async with self.conn.transaction():
                for href, etag, text in fetched:
                    await self._apply(href, etag, text)
        if deleted:
            async with self.conn.transaction():
                for href in sorted(deleted):
                    await self._apply_delete(href)
        self.token, self.stamp = ch.token, stamp
        await self.conn.execute(
            "UPDATE cal_accounts SET sync_token = %s, server_stamp = %s WHERE user_id = %s",
            (ch.token, stamp, self.acct.user_id),
        )

    async def _apply(self, href: str, etag: str | None, text: str) -> None:
        try:
            events = parse_calendar(text, self.user_tz)
        except CalendarError as exc:
            self.stats.bad_objects += 1
            log.warning("calendar sync of user %s: %s unreadable: %s", self.acct.user_id, href, exc)
            return
        for ev in events:
            try:
                async with self.conn.transaction():  # a savepoint: one bad event, not the batch
                    try:
                        await self._apply_event(href, etag, ev)
                    except (ApiError, CalendarError) as exc:
                        self.stats.bad_objects += 1
                        log.warning(
                            "calendar sync of user %s: event %s refused: %s",
                            self.acct.user_id,
                            ev.uid,
                            exc,
                        )
                        raise _Skip() from exc
            except _Skip:
                continue

    async def _apply_event(self, href: str, etag: str | None, remote: EventData) -> None:
        rows = await load_events(
            self.conn, "owner_id = %s AND uid = %s", (self.acct.user_id, remote.uid)
        )
        if not rows:
            act_id = await self._create_activity(remote)
            cur = await self.conn.execute(
                """
                INSERT INTO cal_events (owner_id, uid, kind, source_key, activity_id, summary,
                    description, location, tz, start_at, end_at, all_day, rrule, exdates,
                    status, transparent, organizer, sequence, local_rev, pushed_rev, href,
                    etag, base, remote_changed_at)
                VALUES (%s, %s, 'activity', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                        %s, %s, 1, 1, %s, %s, %s, now())
                ON CONFLICT (owner_id, source_key) DO UPDATE SET uid = EXCLUDED.uid,
                    href = EXCLUDED.href, etag = EXCLUDED.etag, base = EXCLUDED.base,
                    deleted = false, pushed_rev = cal_events.local_rev
                RETURNING id
                """,
                (
                    self.acct.user_id,
                    remote.uid,
                    f"activity:{act_id}",
                    act_id,
                    remote.summary,
                    remote.description,
                    remote.location,
                    remote.tz,
                    remote.start,
                    remote.end,
                    remote.all_day,
                    remote.rrule,
                    list(remote.exdates),
                    remote.status,
                    remote.transparent,
                    remote.organizer,
                    remote.sequence,
                    href,
                    etag,
                    base_json(remote),
                ),
            )
            row = await cur.fetchone()
            assert row is not None
            await write_content(self.conn, int(row[0]), remote)
            # write_content moved updated_at; the projection compares content, not times
            self.stats.pulled_new += 1
            return
        row, local = rows[0]
        if row["deleted"]:
            # deleted in the CRM, changed on the server: the deletion wins (push deletes)
            await self.conn.execute(
                "UPDATE cal_events SET href = %s, etag = %s WHERE id = %s", (href, etag, row["id"])
            )
            return
        before = local.content()
        m = merge(
            row["kind"],
            row["base"],
            before,
            remote.content(),
            row["updated_at"],
            remote.last_modified,
        )
        if m.local_changed and m.remote_changed:
            self.stats.conflicts += 1
        self.stats.pulled_changed += 1
        merged = with_content(local, m.content)
        old_partstats = {a.email: a.partstat for a in local.attendees}
        if m.local_changed:
            await write_content(self.conn, row["id"], merged)
            if row["kind"] == "activity" and row["activity_id"] is not None:
                await self._update_activity(row["activity_id"], merged)
            await itip.record_replies(self.conn, row, old_partstats, merged)
        await self.conn.execute(
            "UPDATE cal_events SET href = %s, etag = %s, base = %s, remote_changed_at = now(), "
            "organizer = coalesce(organizer, %s), "
            "local_rev = local_rev + %s, pushed_rev = CASE WHEN %s THEN pushed_rev ELSE local_rev END "
            "WHERE id = %s",
            (
                href,
                etag,
                base_json(remote),
                remote.organizer,
                1 if m.remote_changed else 0,
                m.remote_changed,
                row["id"],
            ),
        )

    async def _apply_delete(self, href: str) -> None:
        cur = await self.conn.execute(
            "SELECT id, kind, activity_id, deleted FROM cal_events WHERE owner_id = %s AND href = %s",
            (self.acct.user_id, href),
        )
        for ev_id, kind, activity_id, deleted in await cur.fetchall():
            self.stats.pulled_deleted += 1
            if deleted:
                await self.conn.execute("DELETE FROM cal_events WHERE id = %s", (ev_id,))
            elif kind in CRM_OWNED_KINDS:  # the CRM's: put it back
                await self.conn.execute(
                    "UPDATE cal_events SET href = NULL, etag = NULL, base = NULL, pushed_rev = 0 "
                    "WHERE id = %s",
                    (ev_id,),
                )
            else:
                await self.conn.execute("DELETE FROM cal_events WHERE id = %s", (ev_id,))
                if activity_id is not None:
                    await self._delete_activity(activity_id)

    # ----------------------------------------------------------------- push

    def _href_for(self, uid: str) -> str:
        safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in uid)[:120]
        digest = hashlib.sha256(uid.encode()).hexdigest()[:8]
        return f"{self.path.rstrip('/')}/{safe}-{digest}.ics"

    async def push(self) -> int:
        cur = await self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM cal_events WHERE owner_id = %s AND dirty)",
            (self.acct.user_id,),
        )
        dirty = await cur.fetchone()
        if not (dirty and dirty[0]):
            return 0
        total = await self._bulk_create()
        tried: list[int] = []  # a PUT refused this round is not tried again in it
        while True:
            rows = await load_events(
                self.conn,
                "owner_id = %s AND local_rev > pushed_rev AND NOT deleted AND NOT (id = ANY (%s))",
                (self.acct.user_id, tried),
                limit=PUSH_BATCH,
            )
            if not rows:
                break
            tried.extend(row["id"] for row, _ in rows)
            items = [
                (row["href"] or self._href_for(ev.uid), to_ics([ev]), row["etag"])
                for row, ev in rows
            ]
            results = await asyncio.to_thread(self.client.put_many, items)
            async with self.conn.transaction():
                for (row, ev), w in zip(rows, results, strict=True):
                    if w.status == 201:
                        await self.conn.execute(
                            "UPDATE cal_events SET href = %s, etag = %s, base = %s, "
                            "pushed_rev = %s WHERE id = %s",
                            (w.href, w.etag, base_json(ev), row["local_rev"], row["id"]),
                        )
                        total += 1
                    elif row["etag"] is None:
                        await self._adopt(row, w.href)
                    else:
                        # changed on the server meanwhile: the next pull merges it
                        await self.conn.execute(
                            "UPDATE cal_events SET pushed_rev = %s WHERE id = %s",
                            (row["local_rev"], row["id"]),
                        )
                        self.stats.conflicts += 1
            if len(rows) < PUSH_BATCH:
                break
        total += await self._push_deletes()
        self.stats.pushed += total
        return total

    async def _bulk_create(self) -> int:
        """The first upload of many events into an empty calendar, in one request.

        Only when the server takes a whole calendar (`client.bulk_create`), none of the
        user's events is on the server yet and the calendar holds nothing (its ETag read
        with its member list, then sent as If-Match, so an object another client adds
        meanwhile makes the PUT a 412 and the events go one by one instead). The server
        names each object after its UID; one complete listing gives every href and ETag
        and the round's new sync token. An event the listing cannot place keeps no href
        and is written on its own below."""
        if not self.client.bulk_create:
            return 0
        cur = await self.conn.execute(
            "SELECT count(*) FILTER (WHERE href IS NULL AND NOT deleted "
            "AND local_rev > pushed_rev), count(*) FILTER (WHERE href IS NOT NULL) "
            "FROM cal_events WHERE owner_id = %s",
            (self.acct.user_id,),
        )
        got = await cur.fetchone()
        if got is None or got[0] < BULK_MIN or got[1]:
            return 0
        etag, held = await asyncio.to_thread(self.client.members, self.path)
        if etag is None or held:
            return 0
        rows = await load_events(
            self.conn,
            "owner_id = %s AND href IS NULL AND NOT deleted AND local_rev > pushed_rev",
            (self.acct.user_id,),
        )
        text = to_ics([ev for _, ev in rows], name=server.CALENDAR_NAME)
        while len(text.encode("utf-8")) > BULK_MAX_BYTES and len(rows) > BULK_MIN:
            rows = rows[: len(rows) // 2]
            text = to_ics([ev for _, ev in rows], name=server.CALENDAR_NAME)
        if not await asyncio.to_thread(self.client.put_calendar, self.path, text, etag):
            return 0
        stamp = self.client.change_stamp() if self.client.change_stamp else None
        ch = await asyncio.to_thread(self.client.changes, self.path, None)
        prefix = self.path.rstrip("/") + "/"
        by_uid: dict[str, tuple[str, str | None]] = {}
        unplaced: list[str] = []
        for href, et in ch.changed:
            name = href[len(prefix) :] if href.startswith(prefix) else ""
            if name.endswith(".ics") and "/" not in name:
                by_uid[name[:-4]] = (href, et)
            else:
                unplaced.append(href)
        wanted = {ev.uid for _, ev in rows}
        unplaced += [h for u, (h, _) in by_uid.items() if u not in wanted]
        if unplaced:  # named otherwise than after the UID: read which UID each holds
            for href, et, body in await asyncio.to_thread(self.client.fetch, self.path, unplaced):
                with contextlib.suppress(CalendarError):
                    for ev in parse_calendar(body, self.user_tz):
                        by_uid[ev.uid] = (href, et)
        placed = [
            (by_uid[ev.uid][0], by_uid[ev.uid][1], base_json(ev), row["local_rev"], row["id"])
            for row, ev in rows
            if ev.uid in by_uid
        ]
        async with self.conn.transaction():
            async with self.conn.cursor() as wcur:
                await wcur.executemany(
                    "UPDATE cal_events SET href = %s, etag = %s, base = %s, pushed_rev = %s "
                    "WHERE id = %s",
                    placed,
                )
            await self.conn.execute(
                "UPDATE cal_accounts SET sync_token = %s, server_stamp = %s WHERE user_id = %s",
                (ch.token, stamp, self.acct.user_id),
            )
        self.token, self.stamp = ch.token, stamp
        self.stats.bulk = len(placed)
        return len(placed)

    async def _adopt(self, row: dict[str, Any], href: str) -> None:
        """A new event's href already exists on the server (our PUT went through before a
        crash, or another client made it): take the server's copy as the remote side and
        merge, instead of writing a second object."""
        got = await asyncio.to_thread(self.client.get, href)
        if got is None:
            return  # gone again: the next push creates it
        etag, text = got
        async with self.conn.transaction():
            await self.conn.execute(
                "UPDATE cal_events SET href = %s, etag = NULL WHERE id = %s", (href, row["id"])
            )
            await self._apply(href, etag, text)

    async def _push_deletes(self) -> int:
        cur = await self.conn.execute(
            "SELECT id, href, etag FROM cal_events WHERE owner_id = %s AND deleted",
            (self.acct.user_id,),
        )
        rows = await cur.fetchall()
        if not rows:
            return 0
        on_server = [(i, h, e) for i, h, e in rows if h is not None]
        never = [i for i, h, _ in rows if h is None]
        results = await asyncio.to_thread(
            self.client.delete_many, [(h, e) for _, h, e in on_server]
        )
        gone = list(never)
        for (ev_id, href, _), w in zip(on_server, results, strict=True):
            if w.status == 412:  # changed meanwhile: the deletion wins
                again = await asyncio.to_thread(self.client.get, href)
                etag = again[0] if again else None
                w = (await asyncio.to_thread(self.client.delete_many, [(href, etag)]))[0]
            if w.status in (204, 404):
                gone.append(ev_id)
        async with self.conn.transaction():
            for ev_id in gone:
                await itip.record_cancel(self.conn, ev_id)
            await self.conn.execute("DELETE FROM cal_events WHERE id = ANY (%s)", (gone,))
        self.stats.deleted_remote += len(gone) - len(never)
        return len(gone) - len(never)


def _lap(stats: RoundStats, stage: str, since: float) -> float:
    now = time.perf_counter()
    stats.stage_s[stage] = stats.stage_s.get(stage, 0.0) + now - since
    return now


class _Skip(Exception):
    """Roll back one event's savepoint and go on with the next."""


async def sync_user(
    conn: Conn,
    user_id: int,
    tenant: str,
    *,
    clients: ClientPool | None = None,
    settings: Settings | None = None,
) -> RoundStats:
    """One round for one user, on an autocommit connection of its own (`settings` open
    the stored password when no client pool is given)."""
    own = clients is None
    pool = clients if clients is not None else ClientPool(settings=settings)
    try:
        return await _sync_user(conn, user_id, tenant, pool)
    finally:
        if own:
            pool.close()


_LOCK_AND_ACCOUNT_SQL = """
SELECT pg_try_advisory_lock(%s, %s), c.user_id, c.enabled, c.server_url, c.username,
       c.password, c.calendar_url, c.sync_token, c.projected_at, u.timezone, c.server_stamp
FROM cal_accounts c JOIN users u ON u.id = c.user_id WHERE c.user_id = %s
"""
_DONE_SQL = """
WITH done AS (
    UPDATE cal_accounts SET last_sync_at = now(), last_error = NULL, rounds = rounds + 1,
                            projected_at = coalesce(%s, projected_at)
    WHERE user_id = %s)
SELECT pg_advisory_unlock(%s, %s)
"""


async def _sync_user(conn: Conn, user_id: int, tenant: str, clients: ClientPool) -> RoundStats:
    started = time.perf_counter()
    key = (_LOCK_CLASS, user_id % 2**31)
    cur = await conn.execute(_LOCK_AND_ACCOUNT_SQL, (*key, user_id))
    row = await cur.fetchone()
    if row is None:
        return RoundStats(skipped=True)  # not opted in (no lock was taken)
    if not row[0]:
        return RoundStats(skipped=True, busy=True)
    locked = True
    try:
        acct = Account(*row[1:])
        if not acct.enabled:
            return RoundStats(skipped=True)
        client = clients.get(acct)
        try:
            rnd = _Round(conn, acct, client, tenant)
            rnd.path = await asyncio.to_thread(client.ensure_calendar, acct.calendar_url)
            mark = time.perf_counter()
            rnd.stats.stage_s["connect"] = mark - started
            if rnd.path != acct.calendar_url:
                await conn.execute(
                    "UPDATE cal_accounts SET calendar_url = %s WHERE user_id = %s",
                    (rnd.path, user_id),
                )
            rnd.user_tz = acct.timezone
            rnd.stats.projected = await project(conn, user_id, tenant, acct.projected_at)
            mark = _lap(rnd.stats, "project", mark)
            await rnd.pull()
            mark = _lap(rnd.stats, "pull", mark)
            if await rnd.push():
                mark = _lap(rnd.stats, "push", mark)
                await rnd.pull()
                mark = _lap(rnd.stats, "pull", mark)
            else:
                mark = _lap(rnd.stats, "push", mark)
            # the watermark moves only now: a round that failed earlier projects again
            await conn.execute(_DONE_SQL, (rnd.stats.projected.as_of, user_id, *key))
            locked = False
            rnd.stats.duration_s = time.perf_counter() - started
            return rnd.stats
        except Exception:
            clients.drop(acct)  # a broken connection is not reused
            raise
    except Exception as exc:
        await conn.execute(
            "UPDATE cal_accounts SET last_error = %s, updated_at = now() WHERE user_id = %s",
            (f"{type(exc).__name__}: {exc}"[:1000], user_id),
        )
        raise
    finally:
        if locked:
            await conn.execute("SELECT pg_advisory_unlock(%s, %s)", key)
