"""Assistant understanding benchmark: intent and slots of typed commands (SCHEMA.md).

    python -m bench.assistant [--utterances FILE] [--no-cv]

FILE is JSON lines of requests (`id`, `text`, `now`, `tz`, `role`); its labels, when
present, are not shown to the assistant. One prediction per line (`id`, `intent`,
`slots`) is written under bench/out/. With labels, prints intent accuracy and slot F1 as
SCHEMA.md defines them, out-of-scope recall and false-rejection rate, and a grouped
5-fold cross-validation in which the trained fallback never sees the fold it is scored
on (the rules are hand-written and fixed; see the README for what they were tuned on).
Voice is not built yet: its figures are null.

Last line: JSON with predictions_jsonl, intent_accuracy, slot_f1, text_p95_ms,
voice_p95_ms, voice_wer (and the extra figures).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from assistant.classifier import DATA, IntentModel, default_model, read_corpus
from assistant.understand import Fallback, understand
from bench.assistant_score import score

ROOT = Path(__file__).resolve().parent.parent
# ../shared beside the checkout (a worktree sits one level deeper than the main checkout).
DEFAULT = next(
    (
        p / "shared" / "data" / "assistant" / "dev.jsonl"
        for p in (ROOT.parent, ROOT.parent.parent)
        if (p / "shared" / "data" / "assistant" / "dev.jsonl").exists()
    ),
    ROOT.parent / "shared" / "data" / "assistant" / "dev.jsonl",
)
OUT_DIR = ROOT / "bench" / "out"


def _read(path: Path) -> list[dict[str, Any]]:
    rows = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"{path}: repeated ids")
    return rows


def _predict(
    rows: list[dict[str, Any]], model: Fallback
) -> tuple[dict[str, tuple[str, dict[str, Any]]], list[float]]:
    preds: dict[str, tuple[str, dict[str, Any]]] = {}
    lat: list[float] = []
    for r in rows:
        t0 = time.perf_counter()
        u = understand(r["text"], datetime.fromisoformat(r["now"]), fallback=model)
        lat.append((time.perf_counter() - t0) * 1000)
        preds[r["id"]] = (u.intent, u.slots)
    return preds, lat


def _group(text: str) -> str:
    """Commands sharing their first two words are one group (one phrasing pattern)."""
    words = re.sub(r"\b(?:uh|um|er|please|pls|can|you|could|i)\b", " ", text.casefold()).split()
    return " ".join(words[:2])


def _cross_validate(rows: list[dict[str, Any]], folds: int = 5) -> dict[str, float]:
    from sklearn.model_selection import GroupKFold

    texts_all, intents_all = read_corpus(sorted(DATA.glob("*.jsonl")))
    groups = [_group(r["text"]) for r in rows]
    gold = {r["id"]: (r["intent"], r["slots"]) for r in rows}
    hybrid: dict[str, tuple[str, dict[str, Any]]] = {}
    alone_ok = 0
    for train_idx, test_idx in GroupKFold(n_splits=folds).split(rows, groups=groups):
        held = {rows[i]["text"] for i in test_idx}
        keep = [(t, y) for t, y in zip(texts_all, intents_all, strict=True) if t not in held]
        model = IntentModel([t for t, _ in keep], [y for _, y in keep])
        fold = [rows[i] for i in test_idx]
        preds, _ = _predict(fold, model)
        hybrid.update(preds)
        for r in fold:
            alone_ok += model.predict(r["text"])[0] == r["intent"]
        _ = train_idx
    s = score(gold, hybrid)
    return {
        "cv_intent_accuracy": s["intent_accuracy"],
        "cv_slot_f1": s["slot_f1"],
        "cv_oos_recall": s["oos_recall"],
        "cv_false_rejection": s["false_rejection"],
        "cv_classifier_alone_accuracy": alone_ok / len(rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--utterances", type=Path, default=DEFAULT)
    ap.add_argument("--quick", action="store_true", help="accepted for symmetry; the run is quick")
    ap.add_argument("--no-cv", action="store_true", help="skip the cross-validation")
    args = ap.parse_args()
    console = Console(stderr=True)
    rows = _read(args.utterances)
    labelled = all("intent" in r for r in rows)
    requests: list[dict[str, Any]] = [
        {k: r[k] for k in ("id", "text", "now", "tz", "role") if k in r} for r in rows
    ]

    t0 = time.perf_counter()
    model = default_model()
    console.print(f"fallback model trained in {time.perf_counter() - t0:.1f} s")
    understand("warm up", datetime(2026, 1, 1), fallback=model)
    preds, lat = _predict(requests, model)

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"assistant-{args.utterances.stem}-predictions.jsonl"
    with out.open("w", encoding="utf-8") as f:
        for r in requests:
            intent, slots = preds[r["id"]]
            f.write(
                json.dumps({"id": r["id"], "intent": intent, "slots": slots}, ensure_ascii=False)
                + "\n"
            )

    result: dict[str, Any] = {
        "predictions_jsonl": str(out),
        "utterances": len(rows),
        "intent_accuracy": None,
        "slot_f1": None,
        "text_p95_ms": round(float(np.percentile(lat, 95)), 2),
        "voice_p95_ms": None,
        "voice_wer": None,
        "voice_note": "voice (speech to text, text to speech) is not built yet",
    }
    if labelled:
        gold = {r["id"]: (r["intent"], r["slots"]) for r in rows}
        s = score(gold, preds)
        result.update({k: round(v, 4) for k, v in s.items()})
        if not args.no_cv:
            cv = _cross_validate(rows)
            result.update({k: round(v, 4) for k, v in cv.items()})
        table = Table(title=f"assistant on {args.utterances.name}")
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_column("target", justify="right")
        targets = {
            "intent_accuracy": ">= 0.95",
            "slot_f1": ">= 0.90",
            "oos_recall": ">= 0.85",
            "false_rejection": "<= 0.03",
            "text_p95_ms": "< 300",
        }
        for k, v in result.items():
            if isinstance(v, float | int) and k != "utterances":
                table.add_row(k, str(v), targets.get(k.removeprefix("cv_"), ""))
        console.print(table)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
