"""Customer lifetime value and segments of accounts (pure: frames in, frames out).

**Lifetime value**: the retention-based formula of Gupta and Lehmann (2003),
CLV = m * r / (1 + d - r), the present value of a yearly margin m kept with yearly
retention r at discount rate d. Why this and not BG/NBD + Gamma-Gamma: B2B field-service
deals are few per account (a handful a year), so the repeat-purchase counts BG/NBD fits are
too sparse to estimate per-account transaction rates, while the retention r comes from the
churn model already trained on the CRM's own outcomes (r = 1 - churn probability; the
model's window is half a year, so r is squared to a year). m is the won revenue of the
last 365 days (the CRM has no margins).

**Segments**: K-means on standardised profile features (log yearly revenue, wins in a
year, done activities in 90 days, days since the last win, churn probability), k from 2 to
6 chosen by the highest silhouette score (at least 3 accounts per k needed); each segment
is named by its centre's profile (revenue tier, engagement, risk). DBSCAN on the same
features (eps: the median distance to the 4th neighbour, min_samples 4) marks the accounts
outside every dense group `atypical`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # pandas 3 has no stubs package yet
from sklearn.cluster import DBSCAN, KMeans
from sklearn.metrics import silhouette_score
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no stubs

DISCOUNT = 0.10  # yearly
FEATURES = ("log_revenue", "won_365", "activities_90", "days_since_won", "churn")
MIN_ACCOUNTS = 12


def clv(yearly_revenue: float, retention: float, discount: float = DISCOUNT) -> float:
    """m * r / (1 + d - r): the value of a yearly margin kept with retention r."""
    r = min(max(retention, 0.0), 0.99)
    return max(yearly_revenue, 0.0) * r / (1.0 + discount - r)


@dataclass(frozen=True, slots=True)
class Segmented:
    labels: list[str]
    atypical: list[bool]
    k: int
    silhouette: float | None


def _name(centre: pd.Series, overall: pd.Series) -> str:
    revenue = "high-revenue" if centre["log_revenue"] >= overall["log_revenue"] else "low-revenue"
    engaged = "engaged" if centre["activities_90"] >= overall["activities_90"] else "quiet"
    risk = "at risk" if centre["churn"] >= 0.5 else "loyal"
    return f"{revenue}, {engaged}, {risk}"


def segment(profile: pd.DataFrame, seed: int = 0) -> Segmented:
    """Segment names and atypical flags of every row of `profile` (columns FEATURES).
    Fewer than MIN_ACCOUNTS rows: one segment, 'all customers' (too few to cluster)."""
    n = len(profile)
    if n < MIN_ACCOUNTS:
        return Segmented(["all customers"] * n, [False] * n, 1, None)
    raw = profile[list(FEATURES)].astype(np.float64).fillna(0.0)
    x = StandardScaler().fit_transform(raw.to_numpy())
    best: tuple[float, int, np.ndarray] | None = None
    with threadpool_limits(1):
        for k in range(2, min(6, n // 3) + 1):
            labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(x)
            if len(set(labels.tolist())) < 2:
                continue
            s = float(silhouette_score(x, labels))
            if best is None or s > best[0]:
                best = (s, k, labels)
        if best is None:
            return Segmented(["all customers"] * n, [False] * n, 1, None)
        dist = NearestNeighbors(n_neighbors=5).fit(x).kneighbors(x)[0][:, 4]
        eps = max(float(np.median(dist)), 1e-6)
        noise = DBSCAN(eps=eps, min_samples=4).fit_predict(x) == -1
    s, k, labels = best
    overall = raw.median()
    names: dict[int, str] = {}
    for c in range(k):
        base = _name(raw[labels == c].mean(), overall)
        names[c] = base if base not in names.values() else f"{base} ({c + 1})"
    return Segmented([names[int(c)] for c in labels], noise.tolist(), k, round(s, 4))
