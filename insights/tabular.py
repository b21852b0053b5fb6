"""A binary classifier for CRM tables (leads, accounts): fit, score, explain, validate.

The model is a fixed blend of two members that fail differently: gradient-boosted trees
with native categorical splits (interactions, thresholds) and a standardised, one-hot,
L2-regularised logistic regression (smooth, extrapolates sanely when a numeric column
drifts out of the training range). The blend is averaged in log-odds. Reasons for a score
are feature contributions by occlusion: each feature in turn is set to its training
reference value (median or most frequent level) and the change in log-odds is that
feature's contribution, so the reasons hold for the whole blend, not one member.

With `context` columns (market or seasonal conditions that drift over time, e.g. rates or
employment for bank leads) the model is stacked instead: the trees see only the record's own
columns, and a logistic layer fitted on the trees' *time-ordered out-of-fold* log-odds plus
the standardised context columns calibrates them (Platt scaling) and carries the drifting
base rate. Trees cannot extrapolate past the range seen in training; the linear context
term can, and the out-of-fold fit keeps the trees' overfit from inflating their weight.

Pure: pandas frames in, numpy arrays out, no I/O. Too little data is refused with the
reason (`InsufficientDataError`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]  # pandas 3 has no stubs package yet
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no stubs

from insights.cards import ModelCard, binary_metrics, digest_of, new_card
from insights.maintenance.errors import DataFormatError, InsufficientDataError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class TabularConfig:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    tree_weight: float = 0.5  # share of the trees in the log-odds blend
    max_iter: int = 300
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 40
    l2: float = 1.0  # logistic regression C (inverse strength)
    min_rows: int = 200
    min_positives: int = 20
    seed: int = 0
    # drifting condition columns: when given, the stacked model (see the module docstring)
    context: tuple[str, ...] = ()
    stack_folds: int = 3  # time-ordered blocks for the out-of-fold tree log-odds
    stack_c: float = 1.0  # the logistic layer's inverse L2 strength (collinear context)
    # rarer levels of a category share one column in the linear model (last: artefacts
    # pickled before it keep their field order)
    min_category: int = 5
    # numeric columns the linear model trusts less: their standardised values are scaled by
    # `damping` (the L2 penalty on them 1/damping^2 times stronger), e.g. drifting market
    # columns whose sign flips between periods
    damped: tuple[str, ...] = ()
    damping: float = 1.0

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical + self.context

    @property
    def own(self) -> tuple[str, ...]:
        """The record's own columns (what the trees see in the stacked model)."""
        return self.numeric + self.categorical


@dataclass(frozen=True, slots=True)
class Reason:
    """One feature's pull on a score, in log-odds (positive raises the probability)."""

    feature: str
    value: str
    contribution: float


def _logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def _scaled(a: Any, factor: float) -> Any:
    """A damped column's standardised values (module level: fitted models are pickled)."""
    return a * factor


def check_enough(cfg: TabularConfig, y: BoolArray, what: str) -> None:
    n, pos = int(y.size), int(np.sum(y))
    if n < cfg.min_rows:
        raise InsufficientDataError(
            f"{what}: {n} labelled rows, at least {cfg.min_rows} are needed to train"
        )
    if pos < cfg.min_positives or n - pos < cfg.min_positives:
        raise InsufficientDataError(
            f"{what}: {pos} positive and {n - pos} negative outcomes, at least "
            f"{cfg.min_positives} of each are needed to train"
        )


def _frame(df: pd.DataFrame, cfg: TabularConfig) -> pd.DataFrame:
    missing = [c for c in cfg.columns if c not in df.columns]
    if missing:
        raise DataFormatError(f"missing feature columns: {', '.join(missing)}")
    out = pd.DataFrame(index=df.index)
    for c in cfg.numeric:
        out[c] = pd.to_numeric(df[c], errors="coerce").astype(np.float64)
    for c in cfg.categorical:
        out[c] = df[c].astype(str)
    for c in cfg.context:
        out[c] = pd.to_numeric(df[c], errors="coerce").astype(np.float64)
    return out


@dataclass(slots=True)
class TabularModel:
    config: TabularConfig
    trees: Pipeline
    linear: Pipeline
    reference: dict[str, Any]
    card: ModelCard
    threshold: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)
    stacker: Any = None  # the stacked model's logistic layer (None: the blend)
    context_scaler: Any = None
    background: pd.DataFrame | None = None  # training rows the reasons compare against
    drift: Any = None  # insights.drift.DriftReference of the training data, when kept

    def _log_odds(self, x: pd.DataFrame) -> FloatArray:
        w = self.config.tree_weight
        with threadpool_limits(1):
            return self._blend(x, w)

    def _blend(self, x: pd.DataFrame, w: float) -> FloatArray:
        if self.stacker is not None:
            zt = _logit(np.asarray(self.trees.predict_proba(x)[:, 1], dtype=np.float64))
            return _stacked_log_odds(self.stacker, self.context_scaler, zt, x, self.config)
        zl = _logit(np.asarray(self.linear.predict_proba(x)[:, 1], dtype=np.float64))
        if w <= 0:  # the linear model alone (no trees fitted)
            return zl
        zt = _logit(np.asarray(self.trees.predict_proba(x)[:, 1], dtype=np.float64))
        return w * zt + (1 - w) * zl

    def predict_proba(self, df: pd.DataFrame) -> FloatArray:
        """Probability of the positive outcome for every row."""
        return _sigmoid(self._log_odds(_frame(df, self.config)))

    def reasons(self, df: pd.DataFrame, top: int = 3) -> list[list[Reason]]:
        """The `top` strongest feature contributions of every row, strongest first.

        A feature's contribution is the row's log-odds minus its mean log-odds when that
        feature alone takes the values of a background sample of training rows
        (interventional occlusion, a one-feature-at-a-time SHAP approximation). Without a
        background (older artefacts) the feature is set to its reference value instead."""
        x = _frame(df, self.config)
        base = self._log_odds(x)
        contrib = np.zeros((len(x), len(self.config.columns)), dtype=np.float64)
        bg = self.background
        for j, c in enumerate(self.config.columns):
            if bg is None or bg.empty:
                moved = x.copy()
                moved[c] = self.reference[c]
                contrib[:, j] = base - self._log_odds(moved)
                continue
            k = len(bg)
            moved = x.loc[x.index.repeat(k)].reset_index(drop=True)
            moved[c] = np.tile(bg[c].to_numpy(), len(x))
            contrib[:, j] = base - self._log_odds(moved).reshape(len(x), k).mean(axis=1)
        out: list[list[Reason]] = []
        cols = self.config.columns
        for i in range(len(x)):
            order = np.argsort(-np.abs(contrib[i]), kind="mergesort")[:top]
            out.append(
                [
                    Reason(cols[j], str(x.iloc[i][cols[j]]), round(float(contrib[i, j]), 4))
                    for j in order
                ]
            )
        return out


def fit_tabular(
    df: pd.DataFrame,
    y: BoolArray,
    cfg: TabularConfig,
    *,
    name: str,
    kind: str,
    data: dict[str, Any] | None = None,
) -> TabularModel:
    """Fit the blend on labelled rows (refused with the reason on too little data)."""
    yb = np.asarray(y, dtype=bool)
    if len(df) != yb.size:
        raise DataFormatError(f"{len(df)} rows but {yb.size} labels")
    check_enough(cfg, yb, name)
    x = _frame(df, cfg)
    if cfg.context:
        return _fit_stacked(x, yb, cfg, name=name, kind=kind, data=data)
    n_num = len(cfg.numeric)
    ordinal = OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        encoded_missing_value=np.nan,
    )
    tree_prep = ColumnTransformer(
        [("num", "passthrough", list(cfg.numeric)), ("cat", ordinal, list(cfg.categorical))]
    )
    trees = Pipeline(
        [
            ("prep", tree_prep),
            (
                "hgb",
                HistGradientBoostingClassifier(
                    max_iter=cfg.max_iter,
                    learning_rate=cfg.learning_rate,
                    max_leaf_nodes=cfg.max_leaf_nodes,
                    min_samples_leaf=cfg.min_samples_leaf,
                    l2_regularization=1.0,
                    categorical_features=[n_num + i for i in range(len(cfg.categorical))],
                    random_state=cfg.seed,
                ),
            ),
        ]
    )
    damped = [c for c in cfg.numeric if c in cfg.damped]
    parts: list[tuple[str, Any, list[str]]] = [
        (
            "num",
            make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
            [c for c in cfg.numeric if c not in cfg.damped],
        ),
        (
            "cat",
            OneHotEncoder(handle_unknown="ignore", min_frequency=cfg.min_category),
            list(cfg.categorical),
        ),
    ]
    if damped:
        scale = FunctionTransformer(_scaled, kw_args={"factor": cfg.damping})
        parts.append(
            (
                "damped",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), scale),
                damped,
            )
        )
    lin_prep = ColumnTransformer(parts)
    linear = Pipeline([("prep", lin_prep), ("lr", LogisticRegression(C=cfg.l2, max_iter=2000))])
    with threadpool_limits(1):  # OpenMP threads spin badly on a shared, busy machine
        if cfg.tree_weight > 0:
            trees.fit(x, yb)
        linear.fit(x, yb)
    reference: dict[str, Any] = {c: float(np.nanmedian(x[c].to_numpy())) for c in cfg.numeric}
    reference.update({c: str(x[c].mode().iloc[0]) for c in cfg.categorical})
    card = new_card(
        name,
        kind,
        {
            "numeric": list(cfg.numeric),
            "categorical": list(cfg.categorical),
            "tree_weight": cfg.tree_weight,
            "max_iter": cfg.max_iter,
            "learning_rate": cfg.learning_rate,
            "l2_c": cfg.l2,
            "method": "blend of gradient-boosted trees and logistic regression (log-odds)"
            if cfg.tree_weight > 0
            else "L2-regularised logistic regression (one-hot categories, standardised numbers)",
        },
        {**(data or {}), "rows": len(x), "positives": int(yb.sum())},
        digest_of(x.to_numpy(), yb),
    )
    return TabularModel(cfg, trees, linear, reference, card, background=_background(x, cfg))


BACKGROUND_ROWS = 24


def _background(x: pd.DataFrame, cfg: TabularConfig) -> pd.DataFrame:
    """A fixed random sample of training rows for the reasons."""
    n = min(BACKGROUND_ROWS, len(x))
    return x.sample(n=n, random_state=cfg.seed).reset_index(drop=True)


def _tree_pipeline(cfg: TabularConfig) -> Pipeline:
    ordinal = OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        encoded_missing_value=np.nan,
    )
    n_num = len(cfg.numeric)
    prep = ColumnTransformer(
        [("num", "passthrough", list(cfg.numeric)), ("cat", ordinal, list(cfg.categorical))]
    )
    hgb = HistGradientBoostingClassifier(
        max_iter=cfg.max_iter,
        learning_rate=cfg.learning_rate,
        max_leaf_nodes=cfg.max_leaf_nodes,
        min_samples_leaf=cfg.min_samples_leaf,
        l2_regularization=1.0,
        categorical_features=[n_num + i for i in range(len(cfg.categorical))],
        random_state=cfg.seed,
    )
    return Pipeline([("prep", prep), ("hgb", hgb)])


def _stacked_log_odds(
    stacker: LogisticRegression,
    scaler: StandardScaler,
    tree_logit: FloatArray,
    x: pd.DataFrame,
    cfg: TabularConfig,
) -> FloatArray:
    ctx = scaler.transform(x[list(cfg.context)].to_numpy(dtype=np.float64))
    z = np.column_stack([tree_logit, np.nan_to_num(ctx)])
    return np.asarray(stacker.decision_function(z), dtype=np.float64)


def _fit_stacked(
    x: pd.DataFrame,
    yb: BoolArray,
    cfg: TabularConfig,
    *,
    name: str,
    kind: str,
    data: dict[str, Any] | None,
) -> TabularModel:
    """Trees on the record's own columns; a logistic layer on their time-ordered
    out-of-fold log-odds plus the context columns (rows must be in time order)."""
    n = len(x)
    edges = np.linspace(int(n * 0.3), n, cfg.stack_folds + 1).astype(int)
    oof = np.full(n, np.nan)
    with threadpool_limits(1):
        for a, b in itertools.pairwise(edges):
            ya = yb[:a]
            if ya.all() or not ya.any() or b <= a:
                continue  # a block whose past has one outcome only: no fold from it
            fold = _tree_pipeline(cfg).fit(x.iloc[:a], ya)
            oof[a:b] = fold.predict_proba(x.iloc[a:b])[:, 1]
        trees = _tree_pipeline(cfg).fit(x, yb)
    sel = ~np.isnan(oof)
    if sel.sum() < cfg.min_rows // 2 or yb[sel].all() or not yb[sel].any():
        raise InsufficientDataError(
            f"{name}: too few labelled rows after the first time block to calibrate "
            f"({int(sel.sum())} rows)"
        )
    ctx_cols = list(cfg.context)
    scaler = StandardScaler().fit(x[ctx_cols].to_numpy(dtype=np.float64))
    z = np.column_stack(
        [
            _logit(oof[sel]),
            np.nan_to_num(scaler.transform(x[ctx_cols].to_numpy(dtype=np.float64)[sel])),
        ]
    )
    stacker = LogisticRegression(C=cfg.stack_c, max_iter=2000).fit(z, yb[sel])
    reference: dict[str, Any] = {c: float(np.nanmedian(x[c].to_numpy())) for c in cfg.numeric}
    reference.update({c: float(np.nanmedian(x[c].to_numpy())) for c in cfg.context})
    reference.update({c: str(x[c].mode().iloc[0]) for c in cfg.categorical})
    card = new_card(
        name,
        kind,
        {
            "numeric": list(cfg.numeric),
            "categorical": list(cfg.categorical),
            "context": ctx_cols,
            "max_iter": cfg.max_iter,
            "learning_rate": cfg.learning_rate,
            "min_samples_leaf": cfg.min_samples_leaf,
            "method": "gradient-boosted trees (native categorical splits) on the record's "
            "own columns, Platt-calibrated on time-ordered out-of-fold log-odds by a logistic "
            "layer that also takes the drifting context columns",
            "stack_weights": [round(float(v), 4) for v in stacker.coef_[0]],
        },
        {**(data or {}), "rows": n, "positives": int(yb.sum())},
        digest_of(x.to_numpy(), yb),
    )
    return TabularModel(cfg, trees, trees, reference, card, stacker=stacker, context_scaler=scaler)


Fit = Callable[[pd.DataFrame, BoolArray], Any]


@dataclass(frozen=True, slots=True)
class CvFigures:
    """Pooled out-of-fold scores and the card metrics computed on them."""

    metrics: dict[str, float]
    fold_auc: tuple[float, ...]
    scores: FloatArray
    labels: BoolArray


def _pool(folds: Sequence[tuple[FloatArray, BoolArray]]) -> CvFigures:
    from insights.cards import auc

    s = np.concatenate([f[0] for f in folds])
    y = np.concatenate([f[1] for f in folds])
    return CvFigures(binary_metrics(s, y), tuple(auc(a, b) for a, b in folds), s, y)


def time_ordered_cv(
    df: pd.DataFrame,
    y: BoolArray,
    fit: Callable[[pd.DataFrame, BoolArray], Callable[[pd.DataFrame], FloatArray]],
    folds: int = 4,
    first_share: float = 0.4,
) -> CvFigures:
    """Forward-chaining validation: rows are in time order; the first `first_share` is
    always training, the rest is cut into `folds` blocks, each scored by a model fitted on
    every row before it (never on newer rows)."""
    n = len(df)
    start = int(n * first_share)
    edges = np.linspace(start, n, folds + 1).astype(int)
    out: list[tuple[FloatArray, BoolArray]] = []
    yb = np.asarray(y, dtype=bool)
    for a, b in itertools.pairwise(edges):
        predict = fit(df.iloc[:a], yb[:a])
        out.append((predict(df.iloc[a:b]), yb[a:b]))
    return _pool(out)


def stratified_cv(
    df: pd.DataFrame,
    y: BoolArray,
    fit: Callable[[pd.DataFrame, BoolArray], Callable[[pd.DataFrame], FloatArray]],
    folds: int = 5,
    seed: int = 0,
) -> CvFigures:
    """K-fold validation stratified by outcome (for rows with no time order)."""
    yb = np.asarray(y, dtype=bool)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(yb.size, dtype=np.int64)
    for cls in (False, True):
        idx = np.flatnonzero(yb == cls)
        fold_of[rng.permutation(idx)] = np.arange(idx.size) % folds
    out: list[tuple[FloatArray, BoolArray]] = []
    for k in range(folds):
        tr, va = fold_of != k, fold_of == k
        predict = fit(df.iloc[np.flatnonzero(tr)], yb[tr])
        out.append((predict(df.iloc[np.flatnonzero(va)]), yb[va]))
    return _pool(out)
