"""The live geofence engine: GPS fixes in, debounced `enter` / `exit` / `dwell` events out.

Pure: no I/O, no clock. The adapter (geo/live.py) feeds it fixes and persists its state.

Per subject (a device or a rep's phone) and fence, a small state machine:

* A fix is judged INSIDE, OUTSIDE or UNCERTAIN against each fence with a margin equal to
  its GPS accuracy (at least `min_margin_m`; see geo/fences.py). UNCERTAIN fixes neither
  start, confirm nor cancel anything, so jitter along a boundary cannot flap.
* `enter` is confirmed when the subject has been INSIDE for at least `min_inside_s`
  (the first INSIDE fix starts the clock; a confirming INSIDE fix at least that much
  later fires it; any OUTSIDE fix in between cancels). The event's time and position are
  those of the first INSIDE fix: when the subject actually arrived. `exit` is the mirror
  image with `min_outside_s`. A rep driving through a site fence in less than
  `min_inside_s` produces nothing.
* `dwell` fires once per stay, on the first fix at least `dwell_s` (per fence, or the
  engine default) after the confirmed enter, unless an exit is pending.

Bad fixes are flagged and never fire events: accuracy worse than `max_accuracy_m`
(`inaccurate`), a jump from the previous accepted fix that needs more than
`max_speed_mps` even after subtracting both accuracy radii (`speed_jump`), coordinates
out of range (`invalid`), a second fix at the same instant (`duplicate`).

Ordering policy (event time, per subject):

* Fixes wait in a reorder window of `reorder_window_s` of event time: a subject's fix is
  committed to the state machine once that subject has reported a fix at least that much
  newer (or when the caller `flush`es or `advance`s the clock). Within the window, any
  arrival order gives exactly the events of the sorted stream — shuffled batches from a
  shared subscription, an outbox replayed newest-first, duplicates.
* An agent replaying its outbox after being offline delivers fixes newer than anything
  committed for it: they are processed normally in event-time order, so the events of the
  offline period are emitted (late, with their true times) and none is missed.
* A fix at or before the subject's committed watermark (it arrived after the window had
  closed over its time) is `late`: it is reported as flagged and recorded by the caller
  (the gateway stored it anyway), but it never changes state or fires an event — the
  events of that interval were already emitted and are never retracted. Widen the window
  when producers can be delayed by longer than it.

Speed: fixes are evaluated in batches — one vectorised spatial query for the whole batch
(geo/index.py), a vectorised speed check — and the Python state machine runs only for
subjects that have a candidate fence or an open track.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from geo.errors import GeoError
from geo.fences import Fence, Status
from geo.geodesy import haversine_m
from geo.index import FenceIndex

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
NO_TIME = np.iinfo(np.int64).min
NO_DEADLINE = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class EngineConfig:
    min_inside_s: float = 20.0
    min_outside_s: float = 60.0
    dwell_s: float = 300.0
    min_margin_m: float = 5.0
    max_accuracy_m: float = 100.0
    max_speed_mps: float = 70.0
    reorder_window_s: float = 120.0

    def __post_init__(self) -> None:
        for name in (
            "min_inside_s",
            "min_outside_s",
            "dwell_s",
            "min_margin_m",
            "max_accuracy_m",
            "max_speed_mps",
            "reorder_window_s",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise GeoError(f"{name}: must be a non-negative number, got {value}", field=name)
        if self.max_speed_mps == 0 or self.max_accuracy_m == 0:
            raise GeoError("max_speed_mps and max_accuracy_m must be positive")


class EventKind(StrEnum):
    ENTER = "enter"
    EXIT = "exit"
    DWELL = "dwell"


@dataclass(frozen=True, slots=True)
class GeoEvent:
    subject_id: str
    fence_id: str
    kind: EventKind
    at_ms: int
    lon: float
    lat: float
    entered_ms: int | None = None  # dwell and exit: when the stay began (the enter's time)

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.at_ms / 1000, tz=UTC)


class FlagReason(StrEnum):
    INACCURATE = "inaccurate"
    SPEED_JUMP = "speed_jump"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    LATE = "late"


@dataclass(frozen=True, slots=True)
class FlaggedFix:
    subject_id: str
    t_ms: int
    lon: float
    lat: float
    reason: FlagReason


@dataclass(slots=True)
class Outcome:
    events: list[GeoEvent] = field(default_factory=list)
    flagged: list[FlaggedFix] = field(default_factory=list)
    committed: int = 0  # fixes that went through the state machine's ordering
    touched: set[str] = field(default_factory=set)  # subjects whose state changed

    def extend(self, other: Outcome) -> None:
        self.events.extend(other.events)
        self.flagged.extend(other.flagged)
        self.committed += other.committed
        self.touched |= other.touched


@dataclass(slots=True)
class Track:
    """One subject at one fence: confirmed side, and a pending change if any."""

    inside: bool = False
    since_ms: int = 0
    dwelled: bool = False
    pending_ms: int | None = None
    pending_lon: float = 0.0
    pending_lat: float = 0.0


@dataclass(slots=True)
class _Subject:
    id: str
    tracks: dict[str, Track] = field(default_factory=dict)


def _shifted(mask: npt.NDArray[np.bool_], s: IntArray) -> npt.NDArray[np.bool_]:
    """mask of the previous fix of the same subject (False for a subject's first fix)."""
    out = np.zeros(len(mask), dtype=bool)
    out[1:] = mask[:-1] & (s[1:] == s[:-1])
    return out


class Engine:
    """Fences, per-subject state and the reorder buffer; `ingest` is the hot path."""

    def __init__(self, fences: Iterable[Fence] = (), config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self._index = FenceIndex(list(fences))
        self._dwell_ms = self._dwell_table()
        self._subjects: list[_Subject] = []
        self._ix: dict[str, int] = {}
        cap = 16
        self._committed = np.full(cap, NO_TIME, dtype=np.int64)
        self._max_seen = np.full(cap, NO_TIME, dtype=np.int64)
        self._last_t = np.full(cap, NO_TIME, dtype=np.int64)
        self._last_lon = np.zeros(cap)
        self._last_lat = np.zeros(cap)
        self._last_acc = np.zeros(cap)
        self._active: set[int] = set()
        self._buf_s = np.empty(0, np.int64)
        self._buf_t = np.empty(0, np.int64)
        self._buf_lon = np.empty(0)
        self._buf_lat = np.empty(0)
        self._buf_acc = np.empty(0)

    # ------------------------------------------------------------------ fences

    @property
    def fences(self) -> tuple[Fence, ...]:
        return self._index.fences

    def fence(self, fence_id: str) -> Fence | None:
        j = self._index.position.get(fence_id)
        return None if j is None else self._index.fences[j]

    def set_fences(self, fences: Iterable[Fence]) -> None:
        """Rebuild the index. Tracks at fences that no longer exist end without an event."""
        self._index = FenceIndex(list(fences))
        self._dwell_ms = self._dwell_table()
        for si in list(self._active):
            sub = self._subjects[si]
            for fid in [f for f in sub.tracks if f not in self._index.position]:
                del sub.tracks[fid]
            if not sub.tracks:
                self._active.discard(si)

    def _dwell_table(self) -> list[int]:
        return [
            round(1000 * (f.dwell_s if f.dwell_s is not None else self.config.dwell_s))
            for f in self._index.fences
        ]

    # ------------------------------------------------------------------ subjects

    def subject_index(self, subject_id: str) -> int:
        si = self._ix.get(subject_id)
        if si is None:
            si = len(self._subjects)
            self._subjects.append(_Subject(subject_id))
            self._ix[subject_id] = si
            if si >= len(self._committed):
                self._grow(2 * len(self._committed))
        return si

    def _grow(self, cap: int) -> None:
        def grow(a: Any, fill: Any) -> Any:
            out = np.full(cap, fill, dtype=a.dtype)
            out[: len(a)] = a
            return out

        self._committed = grow(self._committed, NO_TIME)
        self._max_seen = grow(self._max_seen, NO_TIME)
        self._last_t = grow(self._last_t, NO_TIME)
        self._last_lon = grow(self._last_lon, 0.0)
        self._last_lat = grow(self._last_lat, 0.0)
        self._last_acc = grow(self._last_acc, 0.0)

    @property
    def subjects(self) -> list[str]:
        return [s.id for s in self._subjects]

    def tracks(self, subject_id: str) -> dict[str, Track]:
        si = self._ix.get(subject_id)
        return {} if si is None else dict(self._subjects[si].tracks)

    def buffered(self) -> int:
        return len(self._buf_t)

    # ------------------------------------------------------------------ ingest

    def ingest(
        self,
        subject_id: str,
        t_ms: Sequence[int] | IntArray,
        lon: Sequence[float] | FloatArray,
        lat: Sequence[float] | FloatArray,
        accuracy_m: Sequence[float] | FloatArray,
    ) -> Outcome:
        """Fixes of one subject, in any order."""
        n = len(t_ms)
        si = self.subject_index(subject_id)
        return self.ingest_arrays(np.full(n, si, dtype=np.int64), t_ms, lon, lat, accuracy_m)

    def ingest_arrays(
        self,
        subject_ix: IntArray,
        t_ms: Sequence[int] | IntArray,
        lon: Sequence[float] | FloatArray,
        lat: Sequence[float] | FloatArray,
        accuracy_m: Sequence[float] | FloatArray,
    ) -> Outcome:
        """Fixes of many subjects (indices from `subject_index`), in any order."""
        s = np.asarray(subject_ix, dtype=np.int64)
        t = np.asarray(t_ms, dtype=np.int64)
        x = np.asarray(lon, dtype=np.float64)
        y = np.asarray(lat, dtype=np.float64)
        acc = np.asarray(accuracy_m, dtype=np.float64)
        if not (len(s) == len(t) == len(x) == len(y) == len(acc)):
            raise GeoError("subject, t_ms, lon, lat and accuracy_m must have the same length")
        if len(s) and (s.min() < 0 or s.max() >= len(self._subjects)):
            raise GeoError("subject index out of range: register subjects with subject_index")
        out = Outcome()
        late = t <= self._committed[s]
        if late.any():
            self._flag(out, s[late], t[late], x[late], y[late], FlagReason.LATE)
            keep = ~late
            s, t, x, y, acc = s[keep], t[keep], x[keep], y[keep], acc[keep]
        if len(s):
            np.maximum.at(self._max_seen, s, t)
        self._append_buffer(s, t, x, y, acc)
        window_ms = round(1000 * self.config.reorder_window_s)
        due = self._buf_t <= self._max_seen[self._buf_s] - window_ms
        out.extend(self._commit_due(due))
        return out

    def flush(self, subject_id: str | None = None) -> Outcome:
        """Commit every buffered fix (of one subject, or all): e.g. at shutdown or in tests."""
        if subject_id is None:
            due = np.ones(len(self._buf_t), dtype=bool)
        else:
            si = self._ix.get(subject_id)
            due = self._buf_s == (-1 if si is None else si)
        return self._commit_due(due)

    def advance(self, now_ms: int) -> Outcome:
        """Commit buffered fixes older than the window by the caller's clock (a periodic tick)."""
        window_ms = round(1000 * self.config.reorder_window_s)
        return self._commit_due(self._buf_t <= now_ms - window_ms)

    def _append_buffer(
        self, s: IntArray, t: IntArray, x: FloatArray, y: FloatArray, acc: FloatArray
    ) -> None:
        if not len(s):
            return
        if not len(self._buf_s):
            self._buf_s, self._buf_t, self._buf_lon, self._buf_lat, self._buf_acc = s, t, x, y, acc
            return
        self._buf_s = np.concatenate((self._buf_s, s))
        self._buf_t = np.concatenate((self._buf_t, t))
        self._buf_lon = np.concatenate((self._buf_lon, x))
        self._buf_lat = np.concatenate((self._buf_lat, y))
        self._buf_acc = np.concatenate((self._buf_acc, acc))

    def _commit_due(self, due: npt.NDArray[np.bool_]) -> Outcome:
        if not due.any():
            return Outcome()
        s, t = self._buf_s[due], self._buf_t[due]
        x, y, acc = self._buf_lon[due], self._buf_lat[due], self._buf_acc[due]
        rest = ~due
        self._buf_s, self._buf_t = self._buf_s[rest], self._buf_t[rest]
        self._buf_lon, self._buf_lat, self._buf_acc = (
            self._buf_lon[rest],
            self._buf_lat[rest],
            self._buf_acc[rest],
        )
        return self._commit(s, t, x, y, acc)

    # ------------------------------------------------------------------ commit

    def _flag(
        self,
        out: Outcome,
        s: IntArray,
        t: IntArray,
        x: FloatArray,
        y: FloatArray,
        reason: FlagReason,
    ) -> None:
        subs = self._subjects
        for si, ti, xi, yi in zip(s.tolist(), t.tolist(), x.tolist(), y.tolist(), strict=True):
            out.flagged.append(FlaggedFix(subs[si].id, ti, xi, yi, reason))

    def _commit(
        self, s: IntArray, t: IntArray, x: FloatArray, y: FloatArray, acc: FloatArray
    ) -> Outcome:
        out = Outcome(committed=len(s))
        order = np.lexsort((t, s))
        s, t, x, y, acc = s[order], t[order], x[order], y[order], acc[order]
        n = len(s)
        # the watermark moves over everything committed, accepted or not
        last_of = np.ones(n, dtype=bool)
        last_of[:-1] = s[1:] != s[:-1]
        self._committed[s[last_of]] = np.maximum(self._committed[s[last_of]], t[last_of])

        dup = np.zeros(n, dtype=bool)
        dup[1:] = (s[1:] == s[:-1]) & (t[1:] == t[:-1])
        invalid = ~(np.isfinite(x) & np.isfinite(y) & (np.abs(x) <= 180) & (np.abs(y) <= 90))
        invalid |= ~np.isfinite(acc) | (acc < 0)
        inaccurate = ~invalid & (acc > self.config.max_accuracy_m)
        for mask, reason in (
            (dup, FlagReason.DUPLICATE),
            (invalid & ~dup, FlagReason.INVALID),
            (inaccurate & ~dup, FlagReason.INACCURATE),
        ):
            if mask.any():
                self._flag(out, s[mask], t[mask], x[mask], y[mask], reason)
        ok = ~(dup | invalid | inaccurate)
        s, t, x, y, acc = s[ok], t[ok], x[ok], y[ok], acc[ok]
        if not len(s):
            return out
        accepted = self._speed_check(s, t, x, y, acc)
        if not accepted.all():
            bad = ~accepted
            self._flag(out, s[bad], t[bad], x[bad], y[bad], FlagReason.SPEED_JUMP)
            s, t, x, y, acc = s[accepted], t[accepted], x[accepted], y[accepted], acc[accepted]
        n = len(s)
        if not n:
            return out
        last_of = np.ones(n, dtype=bool)
        last_of[:-1] = s[1:] != s[:-1]
        ls = s[last_of]
        self._last_t[ls], self._last_lon[ls], self._last_lat[ls], self._last_acc[ls] = (
            t[last_of],
            x[last_of],
            y[last_of],
            acc[last_of],
        )
        margin = np.maximum(acc, self.config.min_margin_m)
        fi, fj, status = self._index.classify(x, y, margin)
        self._run_state_machines(out, s, t, x, y, fi, fj, status)
        return out

    def _speed_check(
        self, s: IntArray, t: IntArray, x: FloatArray, y: FloatArray, acc: FloatArray
    ) -> npt.NDArray[np.bool_]:
        """Accept a fix unless reaching it from the previous accepted fix is impossible."""
        n = len(s)
        first = np.ones(n, dtype=bool)
        first[1:] = s[1:] != s[:-1]
        pt = np.empty(n, dtype=np.int64)
        px, py, pa = np.empty(n), np.empty(n), np.empty(n)
        pt[1:], px[1:], py[1:], pa[1:] = t[:-1], x[:-1], y[:-1], acc[:-1]
        fs = s[first]
        pt[first], px[first], py[first], pa[first] = (
            self._last_t[fs],
            self._last_lon[fs],
            self._last_lat[fs],
            self._last_acc[fs],
        )
        has_prev = pt != NO_TIME
        suspect = has_prev & self._too_fast(t, x, y, acc, pt, px, py, pa)
        accepted = np.ones(n, dtype=bool)
        if not suspect.any():
            return accepted
        # Sequential only from each subject's first suspect: after a rejected fix the
        # next one must be compared with the last *accepted* fix, not its neighbour.
        group_end = np.flatnonzero(np.r_[s[1:] != s[:-1], True]) + 1
        handled_to = 0
        for i0 in np.flatnonzero(suspect & ~_shifted(suspect, s)).tolist():
            if i0 < handled_to:
                continue  # this subject's rest was walked from an earlier suspect
            b = int(group_end[np.searchsorted(group_end, i0, side="right")])
            handled_to = b
            lt, lx, ly, la = int(pt[i0]), float(px[i0]), float(py[i0]), float(pa[i0])
            for i in range(i0, b):
                if i > i0 and accepted[i - 1] and not suspect[i]:
                    pass  # compared with an accepted neighbour: the vectorised verdict holds
                elif self._too_fast(t[i], x[i], y[i], acc[i], lt, lx, ly, la):
                    accepted[i] = False
                    continue
                lt, lx, ly, la = int(t[i]), float(x[i]), float(y[i]), float(acc[i])
        return accepted

    def _too_fast(
        self, t: Any, x: Any, y: Any, acc: Any, pt: Any, px: Any, py: Any, pa: Any
    ) -> Any:
        dist = haversine_m(px, py, x, y) - acc - pa
        dt_s = np.maximum((t - pt) / 1000.0, 1.0)
        return np.maximum(dist, 0.0) / dt_s > self.config.max_speed_mps

    # ------------------------------------------------------------------ state machine

    def _run_state_machines(
        self,
        out: Outcome,
        s: IntArray,
        t: IntArray,
        x: FloatArray,
        y: FloatArray,
        fi: IntArray,
        fj: IntArray,
        status: npt.NDArray[np.int8],
    ) -> None:
        n = len(s)
        bounds = np.flatnonzero(np.r_[True, s[1:] != s[:-1], True])
        with_pairs = np.zeros(n, dtype=bool)
        with_pairs[fi] = True
        pair_start = np.searchsorted(fi, np.arange(n + 1))
        fence_ids = [f.id for f in self._index.fences]
        position = self._index.position
        dwell_ms = self._dwell_ms
        inside = int(Status.INSIDE)
        for g in range(len(bounds) - 1):
            a, b = int(bounds[g]), int(bounds[g + 1])
            si = int(s[a])
            if si not in self._active:
                hits = np.flatnonzero(with_pairs[a:b])
                if not len(hits):
                    continue
                a += int(hits[0])
            sub = self._subjects[si]
            tl, xl, yl = t[a:b].tolist(), x[a:b].tolist(), y[a:b].tolist()
            ps = pair_start[a : b + 1].tolist()
            p0, p1 = ps[0], ps[-1]
            jl = fj[p0:p1].tolist()
            stl = status[p0:p1].tolist()
            # While every track is inside without a pending exit ("stable") and before
            # the next dwell is due, a fix that sees each tracked fence INSIDE or UNCERTAIN and no other fence
            # INSIDE changes nothing: skip the state machine for it.
            stable = False
            tracked: set[int] = set()
            deadline = NO_DEADLINE  # the first pending dwell of a stable subject
            for k in range(b - a):
                lo, hi = ps[k] - p0, ps[k + 1] - p0
                if lo == hi and not sub.tracks:
                    continue
                if stable and tl[k] < deadline:
                    seen = 0
                    for q in range(lo, hi):
                        if jl[q] in tracked:
                            seen += 1
                        elif stl[q] == inside:
                            seen = -1
                            break
                    if seen == len(tracked):
                        continue
                observed = {fence_ids[jl[q]]: stl[q] for q in range(lo, hi)}
                self._step(out, sub, tl[k], xl[k], yl[k], observed)
                stable = all(tr.inside and tr.pending_ms is None for tr in sub.tracks.values())
                if stable:
                    tracked = {position[fid] for fid in sub.tracks}
                    deadline = min(
                        (
                            tr.since_ms + dwell_ms[position[fid]]
                            for fid, tr in sub.tracks.items()
                            if not tr.dwelled
                        ),
                        default=NO_DEADLINE,
                    )
            out.touched.add(sub.id)
            if sub.tracks:
                self._active.add(si)
            else:
                self._active.discard(si)

    def _step(
        self, out: Outcome, sub: _Subject, t: int, x: float, y: float, observed: dict[str, int]
    ) -> None:
        cfg = self.config
        pos = self._index.position
        for fid in list(sub.tracks):
            st = observed.pop(fid, Status.OUTSIDE)
            self._advance(out, sub, fid, sub.tracks[fid], st, t, x, y, pos[fid])
        for fid, st in observed.items():
            if st == Status.INSIDE:
                tr = Track(pending_ms=t, pending_lon=x, pending_lat=y)
                sub.tracks[fid] = tr
                if cfg.min_inside_s == 0:
                    self._advance(out, sub, fid, tr, st, t, x, y, pos[fid])

    def _advance(
        self,
        out: Outcome,
        sub: _Subject,
        fid: str,
        tr: Track,
        st: int,
        t: int,
        x: float,
        y: float,
        j: int,
    ) -> None:
        cfg = self.config
        if tr.inside:
            if st == Status.OUTSIDE:
                if tr.pending_ms is None:
                    tr.pending_ms, tr.pending_lon, tr.pending_lat = t, x, y
                if t - tr.pending_ms >= 1000 * cfg.min_outside_s:
                    out.events.append(
                        GeoEvent(
                            sub.id,
                            fid,
                            EventKind.EXIT,
                            tr.pending_ms,
                            tr.pending_lon,
                            tr.pending_lat,
                            tr.since_ms,
                        )
                    )
                    del sub.tracks[fid]
                    return
            elif st == Status.INSIDE:
                tr.pending_ms = None
        else:
            if st == Status.OUTSIDE:
                del sub.tracks[fid]
                return
            if st == Status.INSIDE:
                assert tr.pending_ms is not None
                if t - tr.pending_ms < 1000 * cfg.min_inside_s:
                    return
                out.events.append(
                    GeoEvent(
                        sub.id, fid, EventKind.ENTER, tr.pending_ms, tr.pending_lon, tr.pending_lat
                    )
                )
                tr.inside, tr.since_ms, tr.pending_ms = True, tr.pending_ms, None
            else:
                return
        if not tr.dwelled and tr.pending_ms is None and t - tr.since_ms >= self._dwell_ms[j]:
            tr.dwelled = True
            out.events.append(GeoEvent(sub.id, fid, EventKind.DWELL, t, x, y, tr.since_ms))

    # ------------------------------------------------------------------ persistence

    def export_state(self, subject_id: str) -> dict[str, Any]:
        """A JSON-able snapshot of one subject: tracks, watermark, last fix, buffered fixes."""
        si = self._ix.get(subject_id)
        if si is None:
            raise GeoError(f"no state for subject {subject_id!r}", field="subject_id")
        sub = self._subjects[si]
        mine = self._buf_s == si
        order = np.argsort(self._buf_t[mine], kind="stable")

        def opt(v: int) -> int | None:
            return None if v == NO_TIME else int(v)

        return {
            "v": 1,
            "tracks": {
                fid: [
                    tr.inside,
                    tr.since_ms,
                    tr.dwelled,
                    tr.pending_ms,
                    tr.pending_lon,
                    tr.pending_lat,
                ]
                for fid, tr in sub.tracks.items()
            },
            "committed_ms": opt(int(self._committed[si])),
            "max_seen_ms": opt(int(self._max_seen[si])),
            "last": None
            if self._last_t[si] == NO_TIME
            else [
                int(self._last_t[si]),
                float(self._last_lon[si]),
                float(self._last_lat[si]),
                float(self._last_acc[si]),
            ],
            "buffer": [
                [int(a), float(b), float(c), float(d)]
                for a, b, c, d in zip(
                    self._buf_t[mine][order],
                    self._buf_lon[mine][order],
                    self._buf_lat[mine][order],
                    self._buf_acc[mine][order],
                    strict=True,
                )
            ],
        }

    def import_state(self, subject_id: str, state: dict[str, Any]) -> None:
        """Restore a snapshot from `export_state` (replacing whatever the engine had)."""
        if not isinstance(state, dict) or state.get("v") != 1:
            raise GeoError(f"state of {subject_id!r}: unknown snapshot format", field="state")
        si = self.subject_index(subject_id)
        sub = self._subjects[si]
        try:
            sub.tracks = {
                fid: Track(
                    bool(v[0]),
                    int(v[1]),
                    bool(v[2]),
                    None if v[3] is None else int(v[3]),
                    float(v[4]),
                    float(v[5]),
                )
                for fid, v in state["tracks"].items()
                if fid in self._index.position
            }
            c, m, last, buf = (
                state["committed_ms"],
                state["max_seen_ms"],
                state["last"],
                state["buffer"],
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise GeoError(
                f"state of {subject_id!r}: malformed snapshot ({exc})", field="state"
            ) from None
        self._committed[si] = NO_TIME if c is None else int(c)
        self._max_seen[si] = NO_TIME if m is None else int(m)
        if last is None:
            self._last_t[si] = NO_TIME
        else:
            self._last_t[si], self._last_lon[si], self._last_lat[si], self._last_acc[si] = last
        keep = self._buf_s != si
        self._buf_s, self._buf_t = self._buf_s[keep], self._buf_t[keep]
        self._buf_lon, self._buf_lat, self._buf_acc = (
            self._buf_lon[keep],
            self._buf_lat[keep],
            self._buf_acc[keep],
        )
        if buf:
            arr = np.asarray(buf, dtype=np.float64)
            self._append_buffer(
                np.full(len(arr), si, dtype=np.int64),
                np.asarray([row[0] for row in buf], dtype=np.int64),
                arr[:, 1].copy(),
                arr[:, 2].copy(),
                arr[:, 3].copy(),
            )
        if sub.tracks:
            self._active.add(si)
        else:
            self._active.discard(si)
