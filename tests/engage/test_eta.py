"""The technician's ETA: told once per work order from the newest plan, on the contact's
channel (SMS with a phone, else e-mail), again only when a re-plan moves it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import AsyncConnection

from engage import consent, engagement, eta, send
from kernel.settings import Settings
from tests.engage.conftest import MailWorld, make_world
from tests.world import People


def test_eta_text_is_in_the_reps_time_zone() -> None:
    def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, month, day, hour, minute, tzinfo=UTC)

    def text(at: datetime, now: datetime) -> str:
        return eta.eta_text("Rep One", at, "Europe/Berlin", update=False, now=now)

    # winter (UTC+1) and summer time (UTC+2) in Berlin; another day is named
    lead = "Your technician Rep arrives at about"
    assert text(utc(1, 15, 8, 40), utc(1, 12, 12)) == f"{lead} 09:40 on 15 Jan."
    assert text(utc(7, 15, 8, 40), utc(7, 12, 12)) == f"{lead} 10:40 on 15 Jul."
    # today in Berlin: no day; 23:30 UTC is already tomorrow there (the same UTC day)
    assert text(utc(1, 15, 8, 40), utc(1, 15, 7)) == f"{lead} 09:40."
    assert text(utc(1, 15, 23, 30), utc(1, 15, 22)) == f"{lead} 00:30 on 16 Jan."
    assert eta.eta_text(None, utc(1, 15, 8, 40), "Bad/Zone", update=True, now=utc(1, 12, 12)) == (
        "Update: Your technician arrives at about 08:40 on 15 Jan."
    )


def _plan(dsn: str, w: MailWorld, territory: int, wo: int, at: datetime) -> int:
    """A ready plan with one stop, as routing stores it (a re-plan is a newer plan)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "INSERT INTO routing_plans (territory_id, plan_date, status, request)"
            " VALUES (%s, %s, 'ready', '{}') RETURNING id",
            (territory, at.date()),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO routing_stops (plan_id, visit_key, rep_id, seq, account_id,"
            " work_order_id, eta, service_start, service_end, wait_s, slack_s, travel_s,"
            " distance_m) VALUES (%s, %s, %s, 1, %s, %s, %s, %s, %s, 0, 0, 600, 5000)",
            (row[0], f"wo-{wo}", w.rep_id, w.account_id, wo, at, at, at + timedelta(hours=1)),
        )
        return int(row[0])


def _work_order(dsn: str, w: MailWorld, territory: int) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "INSERT INTO work_orders (account_id, title, status, territory_id)"
            " VALUES (%s, 'Pump service', 'scheduled', %s) RETURNING id",
            (w.account_id, territory),
        ).fetchone()
        assert row is not None
        return int(row[0])


def _tell(dsn: str, settings: Settings) -> list[eta.EtaNotice]:
    async def run() -> list[eta.EtaNotice]:
        async with await AsyncConnection.connect(dsn) as conn:
            return await eta.notify_etas(conn, send.send_config(settings))

    return asyncio.run(run())


def test_eta_goes_by_sms_once_and_again_only_when_a_replan_moves_it(
    db_dsn: str, test_settings: Settings, people: People
) -> None:
    phone = f"+49151{uuid.uuid4().int % 10**8:08d}"
    w = asyncio.run(make_world(db_dsn, test_settings, people, name="Eve", phone=phone))
    wo = _work_order(db_dsn, w, people.t1)
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    _plan(db_dsn, w, people.t1, wo, first)
    told = [n for n in _tell(db_dsn, test_settings) if n.work_order_id == wo]
    assert [(n.channel, n.update) for n in told] == [("sms", False)]
    assert not [n for n in _tell(db_dsn, test_settings) if n.work_order_id == wo]  # said once
    _plan(db_dsn, w, people.t1, wo, first + timedelta(minutes=5))  # a small move: no update
    assert not [n for n in _tell(db_dsn, test_settings) if n.work_order_id == wo]
    _plan(db_dsn, w, people.t1, wo, first + timedelta(minutes=40))  # re-planned later
    told = [n for n in _tell(db_dsn, test_settings) if n.work_order_id == wo]
    assert [(n.channel, n.update) for n in told] == [("sms", True)]
    with psycopg.connect(db_dsn) as conn:
        texts = [
            r[0]
            for r in conn.execute(
                "SELECT body_text FROM engage_messages WHERE contact_id = %s AND channel = 'sms'"
                " AND direction = 'out' ORDER BY id",
                (w.contact_id,),
            ).fetchall()
        ]
        jobs = conn.execute(
            "SELECT count(*) FROM jobs WHERE task = 'engage.sms'"
            " AND args->>'message_id' IN (SELECT id::text FROM engage_messages"
            " WHERE contact_id = %s AND channel = 'sms')",
            (w.contact_id,),
        ).fetchone()
    assert len(texts) == 2
    assert texts[0].startswith("Your technician Rep arrives at about")
    assert texts[1].startswith("Update: Your technician Rep arrives at about")
    assert jobs is not None and jobs[0] == 2  # each handed to the SMS gateway's job


def test_eta_goes_by_email_without_a_phone_from_the_reps_mailbox(
    db_dsn: str, test_settings: Settings, people: People, mail_world: MailWorld
) -> None:
    w = mail_world
    wo = _work_order(db_dsn, w, people.t2)
    _plan(db_dsn, w, people.t2, wo, datetime.now(UTC) + timedelta(hours=3))
    told = [n for n in _tell(db_dsn, test_settings) if n.work_order_id == wo]
    assert [n.channel for n in told] == ["email"]
    with psycopg.connect(db_dsn) as conn:
        row = conn.execute(
            "SELECT mailbox_id, purpose, state, subject FROM engage_outbox"
            " WHERE idempotency_key LIKE %s",
            (f"eta:{wo}:%",),
        ).fetchone()
    assert row == (w.mailbox_id, "service", "queued", "Your technician's arrival: Pump service")


def test_marketing_waits_for_the_learned_hour_and_service_mail_does_not(
    db_dsn: str, test_settings: Settings, mail_world: MailWorld
) -> None:
    w = mail_world
    learned = engagement.learn([("sms", 7)], [("open", 15), ("click", 15), ("open", 7)])
    assert (learned.channel, learned.hour_utc) == ("sms", 15)
    assert engagement.learn([("email", 9)], []).hour_utc is None  # one signal is too few
    hour = (datetime.now(UTC).hour + 5) % 24
    with psycopg.connect(db_dsn) as conn:
        out = conn.execute(
            "INSERT INTO engage_outbox (idempotency_key, mailbox_id, sender_address, to_address,"
            " contact_id, purpose, subject, message_id, track_id, raw, state, sent_at)"
            " VALUES (%s, %s, 'x@acme.test', 'y@acme.test', %s, 'marketing', 's', %s, %s, '',"
            " 'sent', now()) RETURNING id",
            (f"seed-{w.tag}", w.mailbox_id, w.contact_id, f"<seed-{w.tag}@x>", f"t{w.tag}"),
        ).fetchone()
        assert out is not None
        for kind in ("open", "click", "open"):
            conn.execute(
                "INSERT INTO engage_events (outbox_id, contact_id, kind, at)"
                " VALUES (%s, %s, %s, date_trunc('day', now()) + make_interval(hours => %s))",
                (out[0], w.contact_id, kind, hour),
            )

    async def queue() -> tuple[datetime | None, datetime | None]:
        async with await AsyncConnection.connect(db_dsn) as conn:
            await consent.set_consent(conn, w.contact_id, "email", "marketing", True, "test")
            ids = []
            for purpose in ("marketing", "service"):
                ids.append(
                    await send.enqueue_email(
                        conn,
                        idempotency_key=f"hour:{w.tag}:{purpose}",
                        config=send.send_config(test_settings),
                        sender_mailbox_id=w.mailbox_id,
                        contact_id=w.contact_id,
                        subject="News",
                        html="<p>Hi</p>",
                        purpose=purpose,
                    )
                )
            cur = await conn.execute(
                "SELECT not_before, state FROM engage_outbox WHERE id = ANY(%s) ORDER BY id",
                (ids,),
            )
            rows = await cur.fetchall()
            await conn.commit()
            assert [r[1] for r in rows] == ["queued", "queued"]
            return rows[0][0], rows[1][0]

    marketing_at, service_at = asyncio.run(queue())
    assert service_at is None
    assert (
        marketing_at is not None and marketing_at.hour == hour and marketing_at > datetime.now(UTC)
    )
