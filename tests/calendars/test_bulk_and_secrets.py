"""The first upload of a large calendar in one whole-calendar PUT (against the embedded
Radicale), and CalDAV passwords sealed at rest (kernel.secretbox), old rows by cal0100."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy
from alembic.migration import MigrationContext
from alembic.operations import Operations
from cryptography.fernet import Fernet
from psycopg import AsyncConnection

from calendars import server
from calendars import sync as sync_mod
from calendars.ical import parse_calendar, to_ics
from calendars.model import EventData
from calendars.sync import RoundStats
from kernel import secretbox
from kernel.settings import Settings
from tests.calendars.conftest import Remote, run
from tests.calendars.test_sync import _activity, _q

T0 = datetime(2026, 12, 14, 9, 0, tzinfo=UTC)


def _meetings(db_dsn: str, user: int, n: int) -> None:
    for i in range(n):
        _activity(
            db_dsn,
            user,
            type="meeting",
            subject=f"Bulk {i}",
            start_at=T0 + timedelta(days=i),
            end_at=T0 + timedelta(days=i, hours=1),
            tz="Europe/Berlin",
        )


def test_first_large_upload_is_one_request_and_round_trips(
    db_dsn: str,
    make_user: Callable[..., int],
    sync: Callable[[int], RoundStats],
    remote: Callable[[int], Remote],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sync_mod, "BULK_MIN", 5)
    user = make_user()
    _meetings(db_dsn, user, 7)
    first = sync(user)
    assert first.bulk == 7 and first.pushed == 7
    srv = remote(user)
    objs = srv.objects()
    uids = {parse_calendar(text)[0].uid for _, text in objs.values()}
    assert len(objs) == 7 and len(uids) == 7
    # every event knows its object and the object's ETag: the next round is idle
    rows = _q(db_dsn, "SELECT href, etag FROM cal_events WHERE owner_id = %s", user)
    assert {h: e for h, e in rows} == {h: e for h, (e, _) in objs.items()}
    idle = sync(user)
    assert (idle.pushed, idle.pulled_new, idle.pulled_changed, idle.bulk) == (0, 0, 0, 0)
    # an edit on the server comes back; a new meeting goes out on its own
    href, (etag, text) = sorted(objs.items())[0]
    (ev,) = parse_calendar(text)
    srv.put(href, to_ics([replace(ev, summary="Moved by phone")]), etag)
    _meetings(db_dsn, user, 1)
    after = sync(user)
    assert after.pulled_changed == 1 and after.pushed == 1 and after.bulk == 0
    assert len(srv.objects()) == 8
    got = _q(db_dsn, "SELECT count(*) FROM activities WHERE owner_id = %s", user)
    assert got == [(8,)]
    subjects = _q(
        db_dsn,
        "SELECT count(*) FROM activities WHERE owner_id = %s AND subject = %s",
        user,
        "Moved by phone",
    )
    assert subjects == [(1,)]


def test_a_calendar_that_holds_something_is_written_object_by_object(
    db_dsn: str,
    make_user: Callable[..., int],
    sync: Callable[[int], RoundStats],
    remote: Callable[[int], Remote],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sync_mod, "BULK_MIN", 5)
    user = make_user()
    _meetings(db_dsn, user, 6)
    srv = remote(user)
    phone = EventData(
        uid=f"phone-{user}", summary="From phone", start=T0, end=T0 + timedelta(hours=1)
    )
    srv.put(f"{srv.path}phone.ics", to_ics([phone]), None)
    stats = sync(user)
    assert stats.bulk == 0 and stats.pushed == 6 and stats.pulled_new == 1
    assert len(srv.objects()) == 7  # the phone's event was not replaced


def test_stored_password_is_sealed_and_still_works(
    db_dsn: str,
    test_settings: Settings,
    make_user: Callable[..., int],
    sync: Callable[[int], RoundStats],
) -> None:
    user = make_user()
    ((stored,),) = _q(db_dsn, "SELECT password FROM cal_accounts WHERE user_id = %s", user)
    assert secretbox.is_sealed(stored)
    plain = secretbox.open_(test_settings, stored)
    htpasswd = (server.caldav_dir(test_settings.state_dir) / "htpasswd").read_text()
    assert f"{server.username_for(user)}:{plain}\n" in htpasswd
    assert plain not in stored
    _activity(
        db_dsn, user, type="meeting", subject="Sealed", start_at=T0, end_at=T0 + timedelta(hours=1)
    )
    assert sync(user).pushed == 1  # the sync opened it to log in


def test_migration_seals_rows_written_in_plain_text(
    db_dsn: str, test_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("FIELDMESH_SECRET_KEYS", key)

    async def legacy() -> int:
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            cur = await conn.execute(
                "INSERT INTO users (email, name, role) VALUES (%s, 'Legacy', 'rep') RETURNING id",
                (f"legacy-{uuid.uuid4().hex[:8]}@example.com",),
            )
            row = await cur.fetchone()
            assert row is not None
            await conn.execute(
                "INSERT INTO cal_accounts (user_id, server_url, username, password) "
                "VALUES (%s, 'https://dav.example.com/', 'ann', 'app-password-in-clear')",
                (row[0],),
            )
            return int(row[0])

    user = run(legacy())
    # cal0100's upgrade as alembic runs it, on a database holding a row from before it
    path = Path(sync_mod.__file__).parent / "migrations" / "cal0100_seal_caldav_passwords.py"
    spec = importlib.util.spec_from_file_location("cal0100", path)
    assert spec is not None and spec.loader is not None
    mig = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mig)
    engine = sqlalchemy.create_engine(db_dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        for _ in range(2):  # a second run seals nothing twice
            with engine.begin() as c, Operations.context(MigrationContext.configure(c)):
                mig.upgrade()
    finally:
        engine.dispose()
    ((stored,),) = _q(db_dsn, "SELECT password FROM cal_accounts WHERE user_id = %s", user)
    assert secretbox.is_sealed(stored)
    opened = secretbox.open_(test_settings.with_overrides(secret_keys=(key,)), stored)
    assert opened == "app-password-in-clear"
    # rows sealed before (under the test deployment's own key) were left as they were
    others = _q(db_dsn, "SELECT password FROM cal_accounts WHERE user_id <> %s", user)
    assert all(secretbox.is_sealed(p) for (p,) in others)


def test_an_idle_round_skips_the_report_until_the_server_changes(
    db_dsn: str,
    make_user: Callable[..., int],
    sync: Callable[[int], RoundStats],
    remote: Callable[[int], Remote],
) -> None:
    user = make_user()
    _meetings(db_dsn, user, 1)
    first = sync(user)  # its pull after the push read the marker that push moved
    assert first.pushed == 1 and not first.report_skipped
    idle = sync(user)
    assert idle.report_skipped and (idle.pushed, idle.pulled_new) == (0, 0)
    # a phone adds an event: the marker moves, the next round asks the server
    srv = remote(user)
    phone = EventData(
        uid=f"phone-{user}", summary="From phone", start=T0, end=T0 + timedelta(hours=1)
    )
    srv.put(f"{srv.path}phone.ics", to_ics([phone]), None)
    after = sync(user)
    assert not after.report_skipped and after.pulled_new == 1
    assert sync(user).report_skipped
    # a deletion on the server too
    href = next(h for h, (_, t) in srv.objects().items() if "From phone" in t)
    srv.delete(href, srv.objects()[href][0])
    gone = sync(user)
    assert not gone.report_skipped and gone.pulled_deleted == 1
