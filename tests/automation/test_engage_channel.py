"""Automation's messages through engage, end to end against the embedded servers: a
sequence's e-mail leaves through engage's outbox and the embedded SMTP relay into the
contact's real IMAP mailbox (once: the run's idempotency key is the outbox row's), the
contact's real reply (SMTP in, engage's IMAP sync) exits the enrolment; an SMS step goes
through Kannel to the phone, and the phone's answer (Kannel's fake SMS centre, engage's
inbound callback) exits the run; marketing without an opt-in is refused by engage's
consent, journaled with the reason."""

from __future__ import annotations

import smtplib
import uuid
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection

from automation import service
from automation.channels import EngageChannel, Message
from automation.clock import ManualClock
from engage import consent
from engage.send import send_config
from fieldmesh import svc_sms
from kernel.settings import Settings
from tests.automation.harness import (
    deactivate_all,
    principal,
    query,
    run,
    save_workflow,
    update,
    worker_thread,
)
from tests.engage.conftest import MailWorld, make_world
from tests.engage.test_send import inbox
from tests.eventually import eventually
from tests.world import People

pytestmark = pytest.mark.integration


def _enrol(dsn: str, user_id: int, wid: int, contact_id: int) -> int:
    async def go() -> int:
        p = await principal(dsn, user_id)
        async with await AsyncConnection.connect(dsn) as conn:
            out = await service.enrol(conn, p, wid, "contacts", [contact_id])
            await conn.commit()
            return int(out["run_ids"][0])

    return int(run(go()))


def _opt_in(dsn: str, contact_id: int, channel: str) -> None:
    async def go() -> None:
        async with await AsyncConnection.connect(dsn) as conn:
            await consent.set_consent(conn, contact_id, channel, "marketing", True, "test opt-in")
            await conn.commit()

    run(go())


def _run(dsn: str, run_id: int) -> tuple[str, str | None]:
    r = query(dsn, "SELECT status, exit_reason FROM automation_runs WHERE id = %s", (run_id,))
    return str(r[0][0]), r[0][1]


def _outbox(dsn: str, run_id: int) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(
            "SELECT id, idempotency_key, state, reason, message_id, subject FROM engage_outbox"
            " WHERE idempotency_key LIKE %s ORDER BY id",
            (f"automation:{run_id}:%",),
        )
        cols = [c.name for c in cur.description or ()]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def test_a_sequence_email_goes_out_through_engage_once_and_the_real_reply_exits(
    db_dsn: str, test_settings: Settings, people: People
) -> None:
    deactivate_all(db_dsn)
    w: MailWorld = run(make_world(db_dsn, test_settings, people))
    _opt_in(db_dsn, w.contact_id, "email")
    clock = ManualClock()
    wid = save_workflow(
        db_dsn,
        w.rep_id,
        {
            "name": f"Nurture {w.tag}",
            "trigger": {"on": "manual", "object": "contacts"},
            "exit_on": [{"on": "email.replied"}],
            "steps": [
                {"id": "hello", "action": "send_message", "channel": "email",
                 "subject": "Hello {{record.first_name}} " + w.tag,
                 "body": "Shall we talk about your fleet?\n\nRep", "business_hours": False},
                {"id": "pause", "action": "wait", "duration_s": 3 * 86400},
                {"id": "again", "action": "send_message", "channel": "email",
                 "subject": "Following up " + w.tag, "body": "Still there?", "business_hours": False},
            ],
        },
        kind="sequence",
    )  # fmt: skip
    with worker_thread(db_dsn, clock, concurrency=8, settings=test_settings, engage=True):
        rid = _enrol(db_dsn, w.rep_id, wid, w.contact_id)
        eventually(
            lambda: (
                _run(db_dsn, rid)[0] == "waiting"
                and [o["state"] for o in _outbox(db_dsn, rid)] == ["sent"]
            ),
            what="step 1 sent through engage, the run waiting",
        )
        mails = eventually(
            lambda: inbox(test_settings, w.contact_address, w.contact_password) or None,
            what="the e-mail in the contact's mailbox",
        )
        assert [m["Subject"] for m in mails] == [f"Hello Ann {w.tag}"]
        assert mails[0]["From"].addresses[0].addr_spec == w.rep_address  # the owner's mailbox
        plain = mails[0].get_body(("plain",))
        assert plain is not None and "Shall we talk about your fleet?" in plain.get_content()
        (row,) = _outbox(db_dsn, rid)
        assert row["idempotency_key"] == f"automation:{rid}:0"

        # the same step replayed (a worker died after engage took it): the same outbox row
        async def replay() -> dict[str, Any]:
            async with await AsyncConnection.connect(db_dsn) as conn:
                out = await EngageChannel(send_config(test_settings)).send(
                    conn,
                    Message("email", "contacts", str(w.contact_id), w.contact_address, "again",
                            "again", f"automation:{rid}:0", rid, sender_user_id=w.rep_id),
                )  # fmt: skip
                await conn.commit()
                return out

        assert run(replay())["outbox_id"] == row["id"]
        assert len(_outbox(db_dsn, rid)) == 1

        # the contact answers from their mail client: SMTP in, engage's IMAP sync, the exit
        reply = EmailMessage()
        reply["From"] = f"Ann Lee <{w.contact_address}>"
        reply["To"] = w.rep_address
        reply["Subject"] = f"Re: Hello Ann {w.tag}"
        reply["Message-ID"] = make_msgid(domain="cust.test")
        reply["In-Reply-To"] = row["message_id"]
        reply["References"] = row["message_id"]
        reply.set_content("Yes, call me on Tuesday.")
        with smtplib.SMTP("127.0.0.1", test_settings.smtp_port) as s:
            s.send_message(reply)
        eventually(
            lambda: _run(db_dsn, rid) == ("exited", "email.replied"),
            timeout_s=120,
            what="the enrolment exited on the real reply",
        )
        clock.advance(3 * 86400 + 60)  # the wait is over: an exited run sends nothing more
        mark = query(db_dsn, "SELECT now()")[0][0]
        eventually(
            lambda: (
                query(
                    db_dsn,
                    "SELECT count(*) FROM jobs WHERE task = 'automation.wake' AND status = 'done'"
                    " AND finished_at > %s",
                    (mark,),
                )[0][0]
                >= 2
            ),
            what="the wake job ran after the clock moved",
        )
    assert len(_outbox(db_dsn, rid)) == 1
    assert len(inbox(test_settings, w.contact_address, w.contact_password)) == 1


def test_marketing_without_an_opt_in_is_refused_by_engage_and_journaled(
    db_dsn: str, test_settings: Settings, people: People
) -> None:
    deactivate_all(db_dsn)
    w: MailWorld = run(make_world(db_dsn, test_settings, people, name="Bea"))
    wid = save_workflow(
        db_dsn,
        w.rep_id,
        {
            "name": f"Cold {w.tag}",
            "trigger": {"on": "manual", "object": "contacts"},
            "steps": [{"id": "hello", "action": "send_message", "channel": "email",
                       "subject": "Offer", "body": "Buy", "business_hours": False}],
        },
        kind="sequence",
    )  # fmt: skip
    with worker_thread(db_dsn, ManualClock(), settings=test_settings, engage=True):
        rid = _enrol(db_dsn, w.rep_id, wid, w.contact_id)
        eventually(lambda: _run(db_dsn, rid)[0] == "completed", what="the run completed")
    (row,) = _outbox(db_dsn, rid)
    assert row["state"] == "refused" and "marketing" in row["reason"]
    out = query(
        db_dsn, "SELECT output FROM automation_steps WHERE run_id = %s AND seq = 0", (rid,)
    )[0][0]
    assert out["state"] == "refused" and "opt-in" in out["reason"]
    assert inbox(test_settings, w.contact_address, w.contact_password) == []


def test_an_sms_step_reaches_the_phone_through_kannel_and_the_answer_exits(
    db_dsn: str, test_settings: Settings, people: People, app_url: str
) -> None:
    deactivate_all(db_dsn)
    svc_sms.start(test_settings, inbound=f"{app_url}/engage/sms/inbound")
    phone = f"+49151{uuid.uuid4().int % 10**8:08d}"
    w: MailWorld = run(make_world(db_dsn, test_settings, people, name="Sam", phone=phone))
    phone = str(
        query(db_dsn, "SELECT phone_normalized FROM contacts WHERE id = %s", (w.contact_id,))[0][0]
    )
    wid = save_workflow(
        db_dsn,
        w.rep_id,
        {
            "name": f"Visit reminder {w.tag}",
            "trigger": {"on": "contacts.updated",
                        "when": [{"field": "title", "op": "changed_to", "value": w.tag}]},
            "exit_on": [{"on": "sms.replied"}],
            "steps": [
                {"id": "text", "action": "send_message", "channel": "sms",
                 "body": "Hi {{record.first_name}}, your visit is tomorrow " + w.tag,
                 "purpose": "service", "business_hours": False},
                {"id": "answer", "action": "wait", "duration_s": 86400},
            ],
        },
    )  # fmt: skip
    with worker_thread(db_dsn, ManualClock(), concurrency=8, settings=test_settings, engage=True):
        update(db_dsn, w.rep_id, "contacts", w.contact_id, title=w.tag)
        eventually(
            lambda: any(
                f"your visit is tomorrow {w.tag}" in d and phone in d
                for d in svc_sms.delivered(test_settings)
            ),
            what="the SMS delivered by Kannel's fake SMS centre",
        )
        (rid,) = [
            int(r[0])
            for r in query(db_dsn, "SELECT id FROM automation_runs WHERE workflow_id = %s", (wid,))
        ]
        eventually(lambda: _run(db_dsn, rid)[0] == "waiting", what="the run waits for an answer")
        out = query(
            db_dsn, "SELECT output FROM automation_steps WHERE run_id = %s AND seq = 0", (rid,)
        )[0][0]
        assert out["channel"] == "sms" and out["state"] == "queued"
        ext = query(
            db_dsn, "SELECT external_id FROM engage_messages WHERE id = %s", (out["message_id"],)
        )[0][0]
        assert ext == f"sms-out:automation:{rid}:0"
        svc_sms.inject(test_settings, phone, "4000", f"OK see you {w.tag}")
        eventually(
            lambda: _run(db_dsn, rid) == ("exited", "sms.replied"),
            what="the run exited on the phone's answer",
        )
    sent = [d for d in svc_sms.delivered(test_settings) if f"tomorrow {w.tag}" in d]
    assert len(sent) == 1


def test_register_plugs_engage_in_by_default() -> None:
    from automation.jobs import register
    from kernel.jobs import Registry

    a = register(Registry())
    assert isinstance(a.channel, EngageChannel)
