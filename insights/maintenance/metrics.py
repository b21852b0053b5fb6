"""Pure evaluation metrics for maintenance models (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from insights.maintenance.errors import DataFormatError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _pair(predicted: FloatArray, true: FloatArray) -> tuple[FloatArray, FloatArray]:
    p = np.asarray(predicted, dtype=np.float64).reshape(-1)
    t = np.asarray(true, dtype=np.float64).reshape(-1)
    if p.shape != t.shape:
        raise DataFormatError(f"predicted has {p.size} values, true has {t.size}")
    if p.size == 0:
        raise DataFormatError("no predictions to score")
    return p, t


def rmse(predicted: FloatArray, true: FloatArray) -> float:
    """Root mean squared error."""
    p, t = _pair(predicted, true)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def nasa_score(predicted: FloatArray, true: FloatArray) -> float:
    """The PHM08 asymmetric score: late predictions (d > 0) cost more than early ones.

    s = sum(exp(-d/13) - 1 for d < 0) + sum(exp(d/10) - 1 for d >= 0), d = predicted - true.
    """
    p, t = _pair(predicted, true)
    d = p - t
    return float(np.sum(np.where(d < 0, np.expm1(-d / 13.0), np.expm1(d / 10.0))))


@dataclass(frozen=True, slots=True)
class Classification:
    """Counts and rates of a binary alert against the truth."""

    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int

    @property
    def precision(self) -> float:
        raised = self.true_positives + self.false_positives
        return self.true_positives / raised if raised else 0.0

    @property
    def recall(self) -> float:
        actual = self.true_positives + self.false_negatives
        return self.true_positives / actual if actual else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def classification(predicted: BoolArray, true: BoolArray) -> Classification:
    p = np.asarray(predicted, dtype=bool).reshape(-1)
    t = np.asarray(true, dtype=bool).reshape(-1)
    if p.shape != t.shape:
        raise DataFormatError(f"predicted has {p.size} values, true has {t.size}")
    return Classification(
        true_positives=int(np.sum(p & t)),
        false_positives=int(np.sum(p & ~t)),
        false_negatives=int(np.sum(~p & t)),
        true_negatives=int(np.sum(~p & ~t)),
    )
