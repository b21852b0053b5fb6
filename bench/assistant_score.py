"""Scoring of assistant predictions, exactly as ../shared/data/assistant/SCHEMA.md defines it.

`norm` and `pairs` are the schema's code, kept as it is (the outside check runs the same).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

FILLERS = {"uh", "um", "er", "erm", "uhm", "hmm"}
INTRO = {"that", "saying", "about", "re", "regarding", "to", "note", "notes"}
ENUMS = {
    "entity",
    "activity_type",
    "metric",
    "period",
    "screen",
    "priority",
    "stage",
    "field",
    "status",
}
VALUE_AS = {"amount": "amount", "close_date": "date", "due_date": "date", "stage": "stage",
            "status": "status", "priority": "priority", "email": "email", "phone": "phone"}  # fmt: skip


def norm(key: str, value: object, field: str = "") -> str:
    """Normalise one slot value; `field` is the same prediction's normalised `field` slot."""
    if key == "value":
        key = VALUE_AS.get(field, "name")
    v = unicodedata.normalize("NFC", str(value)).strip()
    if key in ("amount", "duration_min"):
        try:
            x = round(float(v.replace(",", "")), 2)
            return str(int(x)) if x == int(x) else str(x)
        except (ValueError, OverflowError):
            key = "name"
    if key == "time":
        m = re.fullmatch(r"(\d{1,2}):(\d{2})(:\d{2})?", v)
        return f"{int(m.group(1)):02d}:{m.group(2)}" if m else v
    if key == "email":
        return re.sub(r"\s+", "", v.casefold()).strip(".,;:")
    if key == "phone":
        return ("+" if v.startswith("+") else "") + re.sub(r"\D", "", v)
    if key in ENUMS:
        return re.sub(r"[\s-]+", "_", v.casefold())
    if key in ("notes", "description"):
        words = [w for w in re.sub(r"[\W_]+", " ", v.casefold()).split() if w not in FILLERS]
        while words and words[0] in INTRO:
            words.pop(0)
        return " ".join(words)
    if key == "device":
        return re.sub(r"[\W_]+", "", v.casefold())
    if key == "date":
        return v
    v = re.sub(r"\s+", " ", v.casefold()).strip(" .,;:!?\"'")
    v = re.sub(r"^the ", "", v)
    return re.sub(r"['\u2019]s$", "", v)


def pairs(slots: dict[str, Any]) -> set[tuple[str, str]]:
    field = norm("field", slots["field"]) if slots.get("field") not in (None, "") else ""
    return {(k, norm(k, v, field)) for k, v in slots.items() if v not in (None, "", [], {})}


def score(
    gold: dict[str, tuple[str, dict[str, Any]]], pred: dict[str, tuple[str, dict[str, Any]]]
) -> dict[str, float]:
    """Intent accuracy, slot F1, out-of-scope recall and false-rejection rate."""
    if set(gold) != set(pred):
        raise ValueError("predictions and labels cover different ids")
    ok = tp = fp = fn = oos = oos_hit = ins = rejected = 0
    for key, (intent, slots) in gold.items():
        p_intent, p_slots = pred[key]
        g_i = intent.strip().casefold()
        p_i = p_intent.strip().casefold()
        ok += g_i == p_i
        if g_i == "out_of_scope":
            oos += 1
            oos_hit += p_i == "out_of_scope"
            continue
        ins += 1
        rejected += p_i == "out_of_scope"
        g, p = pairs(slots), pairs(p_slots)
        tp += len(g & p)
        fp += len(p - g)
        fn += len(g - p)
    return {
        "intent_accuracy": ok / len(gold) if gold else 0.0,
        "slot_f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0,
        "oos_recall": oos_hit / oos if oos else 1.0,
        "false_rejection": rejected / ins if ins else 0.0,
    }
