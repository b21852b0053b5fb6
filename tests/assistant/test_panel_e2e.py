"""The console's assistant panel in headless Chromium: a typed search answered within the
rep's access, a write confirmed with "Do it", carried out and undone, and push-to-talk with
Chromium's fake microphone playing speech synthesised by piper, recognised on the server."""

from __future__ import annotations

import json
import subprocess
import uuid
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from assistant import voice
from kernel.settings import PROJECT_ROOT, Settings
from tests.appserver import serve_app
from tests.console.conftest import make_user

pytestmark = pytest.mark.integration
DRIVER = Path(__file__).with_name("e2e_panel.cjs")


@pytest.fixture(scope="module")
def url(test_settings: Settings) -> Iterator[str]:
    with serve_app(test_settings) as u:
        yield u


def test_the_panel_answers_typed_and_spoken_commands(
    url: str, test_settings: Settings, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        ids = []
        for n in ("panel-north", "panel-south"):
            row = conn.execute(
                "INSERT INTO territories (name) VALUES (%s) RETURNING id", (f"{n}-{tag}",)
            ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
        mine, other = ids
        rep = make_user(test_settings.dsn, "rep", territory_id=mine)
        for name, territory in (
            (f"Kestrel Farms {tag}", mine),
            (f"Kestrel Farms {tag} South", other),
        ):
            conn.execute(
                "INSERT INTO accounts (name, territory_id) VALUES (%s, %s)", (name, territory)
            )
    # the fake microphone plays this: silence, the command, silence (16 kHz mono WAV)
    speech = voice.read_wav(voice.speak("open the map", steady=True))
    pad = np.zeros(voice.RATE // 2, dtype=np.int16)
    wav = tmp_path / "command.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(voice.RATE)
        w.writeframes(np.concatenate([pad, speech, pad]).tobytes())
    params = {
        "user": rep,
        "search": f"find accounts named kestrel farms {tag}",
        "create": f"create account Osprey Works {tag}",
        "wav": str(wav),
        "seconds": (len(speech) + 2 * len(pad)) / voice.RATE,
    }
    proc = subprocess.run(
        ["node", str(DRIVER), url, json.dumps(params)],
        capture_output=True, text=True, timeout=180, cwd=PROJECT_ROOT, check=False,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(lines[-1])
    assert f"Kestrel Farms {tag}" in r["found"] and f"{tag} South" not in r["found"]
    assert "Shall I go ahead" in r["question"]
    assert r["done"].startswith(f"Created the account Osprey Works {tag}")
    with psycopg.connect(test_settings.dsn) as conn:
        row = conn.execute(
            "SELECT territory_id FROM accounts WHERE name = %s", (f"Osprey Works {tag}",)
        ).fetchone()
    assert row is None  # undone from the panel
    assert r["undone"] == "Undone."
    assert "open the map" in r["heard"]
    assert r["voiceIntent"] == "navigate" and r["hash"] == "#/map"
    assert r["errors"] == []
