"""Scheduled reports end to end: a cron trigger (the injectable clock) runs a saved report
(`crm.reports.run_report`) as the workflow's owner and e-mails it as XLSX, CSV and PDF
attachments through engage into a real IMAP mailbox; only rows the owner may see are in
it; a report the owner may not see fails the step, named."""

from __future__ import annotations

import io
import uuid
import zipfile
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.types.json import Jsonb

from automation.clock import ManualClock
from engage import accounts as mail_accounts
from kernel.settings import Settings
from tests.automation.harness import (
    create,
    deactivate_all,
    principal,
    query,
    run,
    save_workflow,
    worker_thread,
)
from tests.engage.conftest import MailWorld, make_world
from tests.engage.test_send import inbox
from tests.eventually import eventually
from tests.world import People

pytestmark = pytest.mark.integration

MONDAY_7 = datetime(2026, 12, 7, 7, 0, 20, tzinfo=UTC)  # a Monday


def _saved_report(dsn: str, owner: int, name: str, definition: dict[str, object]) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "INSERT INTO saved_reports (name, definition, owner_id) VALUES (%s, %s, %s) RETURNING id",
            (name, Jsonb(definition), owner),
        ).fetchone()
        assert row is not None
        return int(row[0])


def _runs(dsn: str, wid: int) -> list[tuple[int, str, str | None]]:
    return [
        (int(r[0]), str(r[1]), r[2])
        for r in query(
            dsn,
            "SELECT id, status, error FROM automation_runs WHERE workflow_id = %s ORDER BY id",
            (wid,),
        )
    ]


def test_a_weekly_report_is_mailed_as_xlsx_csv_and_pdf_with_only_the_owners_rows(
    db_dsn: str, test_settings: Settings, people: People
) -> None:
    deactivate_all(db_dsn)
    w: MailWorld = run(make_world(db_dsn, test_settings, people))
    create(db_dsn, w.rep_id, "accounts", name=f"Second {w.tag}", territory_id=people.t1)
    create(db_dsn, people.users["rep2"], "accounts", name=f"Hidden {w.tag}", territory_id=people.t2)
    boss, boss_pw = f"boss-{w.tag}@acme.test", f"pw-{uuid.uuid4().hex[:8]}"
    mail_accounts.add_mailbox(test_settings, boss, boss_pw)
    report = _saved_report(
        db_dsn,
        w.rep_id,
        f"Accounts {w.tag}",
        {
            "entity": "accounts",
            "columns": ["name"],
            "filter": {"field": "name", "op": "contains", "value": w.tag},
        },
    )
    clock = ManualClock(MONDAY_7)
    wid = save_workflow(
        db_dsn,
        w.rep_id,
        {
            "name": f"Weekly accounts {w.tag}",
            "trigger": {"on": "schedule", "cron": "0 7 * * 1"},
            "steps": [{"id": "mail", "action": "send_report", "report_id": report,
                       "to": [boss], "formats": ["xlsx", "csv", "pdf"],
                       "subject": "Weekly: {{report.name}}"}],
        },
    )  # fmt: skip
    with worker_thread(db_dsn, clock, concurrency=8, settings=test_settings, engage=True):
        eventually(
            lambda: [s for _, s, _ in _runs(db_dsn, wid)] == ["completed"],
            what="the Monday 07:00 run",
        )
        mails = eventually(
            lambda: inbox(test_settings, boss, boss_pw) or None, what="the report in the mailbox"
        )
        assert [m["Subject"] for m in mails] == [f"Weekly: Accounts {w.tag}"]
        assert mails[0]["From"].addresses[0].addr_spec == w.rep_address
        files = {str(p.get_filename()): p.get_content() for p in mails[0].iter_attachments()}
        assert sorted(files) == [f"Accounts-{w.tag}.{x}" for x in ("csv", "pdf", "xlsx")]
        csv_text = files[f"Accounts-{w.tag}.csv"]
        csv_text = csv_text.decode() if isinstance(csv_text, bytes) else csv_text
        assert f"Second {w.tag}" in csv_text and f"Bright & <Co> {w.tag}" in csv_text
        assert f"Hidden {w.tag}" not in csv_text  # rep2's account: the owner may not see it
        with zipfile.ZipFile(io.BytesIO(files[f"Accounts-{w.tag}.xlsx"])) as z:
            cells = " ".join(z.read(n).decode() for n in z.namelist() if n.endswith(".xml"))
        assert f"Second {w.tag}" in cells and f"Hidden {w.tag}" not in cells
        assert files[f"Accounts-{w.tag}.pdf"].startswith(b"%PDF")
        out = query(
            db_dsn,
            "SELECT s.output FROM automation_steps s JOIN automation_runs r ON r.id = s.run_id"
            " WHERE r.workflow_id = %s",
            (wid,),
        )[0][0]
        assert out["rows"] == 2 and out["sent"][0]["to"] == boss
        # a week later, the next Monday 07:00: one more run and mail, none in between
        clock.advance(7 * 86400)
        eventually(lambda: len(_runs(db_dsn, wid)) == 2, what="next Monday's run")
        eventually(lambda: len(inbox(test_settings, boss, boss_pw)) == 2, what="the second mail")
    assert len(_runs(db_dsn, wid)) == 2


def test_a_report_the_owner_may_not_see_fails_the_step_named(
    db_dsn: str, test_settings: Settings, people: People
) -> None:
    from psycopg import AsyncConnection

    from automation import service

    deactivate_all(db_dsn)
    w: MailWorld = run(make_world(db_dsn, test_settings, people, name="Cy"))
    private = _saved_report(
        db_dsn,
        people.users["rep2"],
        f"Private {w.tag}",
        {"entity": "accounts", "columns": ["name"]},
    )
    wid = save_workflow(
        db_dsn,
        w.rep_id,
        {
            "name": f"Peek {w.tag}",
            "trigger": {"on": "manual"},
            "steps": [{"id": "peek", "action": "send_report", "report_id": private,
                       "to": [w.contact_address]}],
        },
    )  # fmt: skip

    async def start() -> int:
        p = await principal(db_dsn, w.rep_id)
        async with await AsyncConnection.connect(db_dsn) as conn:
            rid = await service.start_manual(conn, p, wid, None, None, {})
            await conn.commit()
            return rid

    with worker_thread(db_dsn, ManualClock(), settings=test_settings, engage=True):
        rid = run(start())
        eventually(lambda: _runs(db_dsn, wid)[0][1] == "failed", what="the run failed")
    (_, _, error) = _runs(db_dsn, wid)[0]
    assert error is not None and "step 'peek'" in error and f"report {private} not found" in error
    assert (
        query(
            db_dsn,
            "SELECT count(*) FROM engage_outbox WHERE idempotency_key LIKE %s",
            (f"automation:{rid}:%",),
        )[0][0]
        == 0
    )
