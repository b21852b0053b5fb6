"""Model cards shared by every insights model (maintenance, leads, churn, forecasts).

A card says what a trained model is, the data window it saw and how well it did. The
registry (`insights.maintenance.registry`) saves any object with a `card` attribute, so a
lead or churn model is versioned, activated and rolled back the same way as a RUL model.
`binary_metrics` gives the figures a classifier's card carries: AUC, precision, recall and
F1 at the chosen threshold, calibration (Brier score, expected calibration error) and lift.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What a trained model is, what it saw and how well it did."""

    name: str
    kind: str
    version: str
    created_at: str  # ISO 8601 UTC
    params: dict[str, Any]
    data: dict[str, Any]  # source, window, rows, sha256 of the training rows
    metrics: dict[str, float] = field(default_factory=dict)

    def with_metrics(self, **metrics: float) -> ModelCard:
        return ModelCard(
            name=self.name,
            kind=self.kind,
            version=self.version,
            created_at=self.created_at,
            params=self.params,
            data=self.data,
            metrics={**self.metrics, **{k: float(v) for k, v in metrics.items()}},
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_card(
    name: str, kind: str, params: dict[str, Any], data: dict[str, Any], digest: str
) -> ModelCard:
    """A card for a model fitted now; the version is the UTC time plus the data digest."""
    now = datetime.now(UTC)
    return ModelCard(
        name=name,
        kind=kind,
        version=f"{now:%Y%m%dT%H%M%S%fZ}-{digest[:8]}",
        created_at=now.isoformat(),
        params=json.loads(json.dumps(params)),  # plain JSON types, as stored and read back
        data=json.loads(json.dumps({**data, "sha256": digest})),
    )


def digest_of(*arrays: Any) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=object).astype(str)).tobytes())
    return h.hexdigest()


def auc(scores: FloatArray, labels: npt.NDArray[np.bool_]) -> float:
    """Area under the ROC curve by the rank-sum formula (ties get their mean rank)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=np.float64)
    sorted_s = s[order]
    # mean rank of each run of tied scores
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def best_f1_threshold(scores: FloatArray, labels: npt.NDArray[np.bool_]) -> float:
    """The score threshold with the highest F1 on these scores (chosen on validation data)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    order = np.argsort(-s, kind="mergesort")
    tp = np.cumsum(y[order])
    k = np.arange(1, s.size + 1)
    f1 = 2 * tp / (k + max(int(y.sum()), 1))
    return float(s[order][int(np.argmax(f1))])


def binary_metrics(
    scores: FloatArray, labels: npt.NDArray[np.bool_], threshold: float | None = None
) -> dict[str, float]:
    """Card metrics of probabilities against outcomes: AUC, P/R/F1 at the threshold (best
    F1 if none is given), Brier score, expected calibration error (10 bins) and the lift
    of the top decile over the base rate."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    t = best_f1_threshold(s, y) if threshold is None else threshold
    pred = s >= t
    tp = float(np.sum(pred & y))
    precision = tp / max(float(pred.sum()), 1.0)
    recall = tp / max(float(y.sum()), 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    bins = np.minimum((s * 10).astype(np.int64), 9)
    ece = 0.0
    for b in range(10):
        m = bins == b
        if m.any():
            ece += float(m.mean()) * abs(float(s[m].mean()) - float(y[m].mean()))
    top = np.argsort(-s, kind="mergesort")[: max(s.size // 10, 1)]
    base = float(y.mean()) if y.size else 0.0
    return {
        "auc": auc(s, y),
        "threshold": t,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "brier": float(np.mean((s - y) ** 2)),
        "ece": ece,
        "lift_top10": float(y[top].mean()) / base if base else float("nan"),
        "base_rate": base,
    }
