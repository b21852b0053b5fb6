"""The console's calendar in headless Chromium: dragging a meeting onto another shows the
409 conflict and leaves it in place, dragging it to a free time moves it; the week and
month views navigate; the create-meeting form finds slots and creates the meeting."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from identity.auth import hash_password
from kernel.settings import PROJECT_ROOT, Settings

DRIVER = Path(__file__).with_name("e2e_calendar.cjs")
SHOTS = PROJECT_ROOT / "bench" / "out" / "console"
PASSWORD = "correct-horse-9"


def run(name: str, base: str, params: dict[str, Any], tmp: Path) -> dict[str, Any]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["node", str(DRIVER), name, base, json.dumps(params)],
        capture_output=True, text=True, timeout=180, cwd=PROJECT_ROOT, check=False,
        env=dict(os.environ, FM_SHOTS=str(SHOTS)),
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, (
        f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    out: dict[str, Any] = json.loads(lines[-1])
    return out


@pytest.fixture
def rep(test_settings: Settings) -> dict[str, Any]:
    email = f"calrep-{uuid.uuid4().hex[:8]}@example.test"
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO users (email, name, role, password_hash, timezone) VALUES"
            " (%s, 'Cal Rep', 'rep', %s, 'UTC') RETURNING id",
            (email, hash_password(PASSWORD)),
        ).fetchone()
    assert row is not None
    return {"id": int(row[0]), "email": email, "password": PASSWORD}


def _day() -> datetime:
    today = datetime.now(UTC).date()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 + 7)
    return datetime.combine(monday, time(0), tzinfo=UTC)


def _meeting(
    conn: psycopg.Connection[Any], owner: int, subject: str, s: datetime, e: datetime
) -> int:
    row = conn.execute(
        "INSERT INTO activities (type, subject, start_at, end_at, owner_id) VALUES"
        " ('meeting', %s, %s, %s, %s) RETURNING id",
        (subject, s, e, owner),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_dragging_a_meeting_onto_another_shows_the_conflict_then_moves_to_a_free_time(
    app_url: str, rep: dict[str, Any], test_settings: Settings, tmp_path: Path
) -> None:
    day = _day()
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        _meeting(
            conn, rep["id"], "Budget review", day + timedelta(hours=10), day + timedelta(hours=11)
        )
        moving = _meeting(
            conn, rep["id"], "Supplier call", day + timedelta(hours=13), day + timedelta(hours=14)
        )
    out = run(
        "drag_conflict", app_url,
        {"user": rep, "day": day.date().isoformat(), "moving": moving, "up_min": 180, "down_min": 60},
        tmp_path,
    )  # fmt: skip
    assert "Conflict" in out["conflict"] and "Budget review" in out["conflict"]
    assert out["alternatives"] >= 1
    assert abs(out["unchanged_px"]) < 2  # redrawn where it was
    assert out["moved_px"] == pytest.approx(48, abs=2)  # one hour down
    assert out["weekCols"] == 7
    assert out["month1"] != out["month2"]
    assert out["errors"] == []
    with psycopg.connect(test_settings.dsn) as conn:
        row = conn.execute(
            "SELECT start_at, end_at FROM activities WHERE id = %s", (moving,)
        ).fetchone()
    assert row == (day + timedelta(hours=14), day + timedelta(hours=15))


def test_the_create_meeting_form_finds_slots_and_creates_the_meeting(
    app_url: str, rep: dict[str, Any], test_settings: Settings, tmp_path: Path
) -> None:
    day = _day()
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        _meeting(
            conn, rep["id"], "Morning stand-up", day + timedelta(hours=8), day + timedelta(hours=9)
        )
    subject = f"Plan {uuid.uuid4().hex[:6]}"
    out = run(
        "slot_finder",
        app_url,
        {"user": rep, "day": day.date().isoformat(), "subject": subject},
        tmp_path,
    )
    assert out["slots"] and any("first free slot" in s for s in out["slots"])
    # submitted empty: both missing things named on the form; choosing a slot clears its line
    assert out["missing"] == [
        "Give the meeting a subject.",
        'Find slots and choose one with "Use" first.',
    ]
    assert out["slotErrorAfter"] == ""
    assert out["errors"] == []
    with psycopg.connect(test_settings.dsn) as conn:
        row = conn.execute(
            "SELECT start_at, end_at, owner_id FROM activities WHERE subject = %s", (subject,)
        ).fetchone()
    assert row is not None
    start, end, owner = row
    assert owner == rep["id"] and end - start == timedelta(hours=1)
    # within working hours (08:00-17:00 UTC by default), after the stand-up on that day or later
    assert start >= day + timedelta(hours=9) and time(8) <= start.time() and end.time() <= time(17)
    assert "Resource" in out["resources"]
    # the booking page: what is missing or refused said beside its field, in words
    booking = out["booking"]
    assert booking["empty"] == {
        "name": "Give your name.",
        "email": "Give your e-mail address, like name@example.com.",
        "phone": "",
        "note": "",
    }
    assert booking["focus"] == "f-name"
    assert booking["phone"]["phone"].startswith("A phone number has digits")
    assert booking["phone"]["name"] == booking["phone"]["email"] == ""
    assert "regex" not in booking["result"] and "Expected" not in booking["result"]
