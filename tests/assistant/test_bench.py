"""bench.assistant on an unlabelled file: one prediction per id, figures that need labels null,
the voice figures measured all the same (the text is the reference of the word error rate)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_unlabelled_file_gets_one_prediction_per_id(tmp_path: Path) -> None:
    rows = [
        {
            "id": "a",
            "text": "next stop",
            "now": "2026-03-02T09:00:00",
            "tz": "Europe/Berlin",
            "role": "rep",
        },
        {
            "id": "b",
            "text": "remind me tmrw at 8 to call Anna",
            "now": "2026-03-02T09:00:00",
            "tz": "UTC",
            "role": "rep",
        },
    ]
    src = tmp_path / "requests.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run(
        [sys.executable, "-m", "bench.assistant", "--utterances", str(src), "--voice", "2"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["intent_accuracy"] is None and result["voice_intent_accuracy"] is None
    assert 0.0 <= result["voice_wer"] <= 1.0 and result["voice_p95_ms"] > 0
    assert result["voice_commands"] == 2
    preds = [
        json.loads(line) for line in Path(result["predictions_jsonl"]).read_text().splitlines()
    ]
    assert [p["id"] for p in preds] == ["a", "b"]
    assert preds[0] == {"id": "a", "intent": "next_stop", "slots": {}}
    assert preds[1]["slots"] == {"date": "2026-03-03", "time": "08:00", "notes": "call Anna"}
