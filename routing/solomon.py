"""Reader for VRPTW instances in the Solomon / Gehring-Homberger text format.

Format: a name line, `VEHICLE` / `NUMBER CAPACITY` / two integers, `CUSTOMER`, a
header line, then one line per customer: number, x, y, demand, ready time, due
date, service time. Customer 0 is the depot. Euclidean distances, travel time
equals distance. `bks.csv` beside the instances holds best-known solutions
(`instance,vehicles,distance,...`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from routing.model import InputError, Location, Problem, Rep, TimeWindow, Visit


@dataclass(frozen=True, slots=True)
class Customer:
    number: int
    x: float
    y: float
    demand: int
    ready: float
    due: float
    service: float


@dataclass(frozen=True, slots=True)
class SolomonInstance:
    name: str
    vehicles: int
    capacity: int
    depot: Customer
    customers: tuple[Customer, ...]

    def to_problem(self, vehicles: int | None = None) -> Problem:
        """The instance as a routing Problem: one rep per vehicle, all at the depot."""
        locations = [Location("depot", self.depot.x, self.depot.y)]
        visits = []
        for c in self.customers:
            loc_id = f"c{c.number}"
            locations.append(Location(loc_id, c.x, c.y))
            visits.append(
                Visit(
                    id=str(c.number),
                    location_id=loc_id,
                    service_s=c.service,
                    time_windows=(TimeWindow(c.ready, c.due),),
                    demand=c.demand,
                )
            )
        shift = TimeWindow(self.depot.ready, self.depot.due)
        reps = tuple(
            Rep(
                id=f"v{k}",
                start_location_id="depot",
                end_location_id="depot",
                shift=shift,
                capacity=self.capacity,
            )
            for k in range(vehicles if vehicles is not None else self.vehicles)
        )
        return Problem(tuple(locations), tuple(visits), reps, minimise_reps=True)


def parse_solomon(text: str, name: str = "") -> SolomonInstance:
    lines = [ln.strip() for ln in text.replace("\r", "").split("\n")]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise InputError("empty Solomon instance", name or None)
    title = lines[0]
    try:
        v_idx = next(i for i, ln in enumerate(lines) if ln.upper().startswith("VEHICLE"))
        vehicles_s, capacity_s = lines[v_idx + 2].split()[:2]
        c_idx = next(i for i, ln in enumerate(lines) if ln.upper().startswith("CUSTOMER"))
    except (StopIteration, IndexError, ValueError) as exc:
        raise InputError(f"{name or title}: missing VEHICLE or CUSTOMER section") from exc
    customers: list[Customer] = []
    for ln in lines[c_idx + 1 :]:
        parts = ln.split()
        if not parts or not parts[0].lstrip("-").isdigit():
            continue  # the column header
        if len(parts) < 7:
            raise InputError(
                f"{name or title}: customer line has {len(parts)} fields, needs 7: {ln!r}"
            )
        customers.append(
            Customer(
                number=int(parts[0]),
                x=float(parts[1]),
                y=float(parts[2]),
                demand=int(float(parts[3])),
                ready=float(parts[4]),
                due=float(parts[5]),
                service=float(parts[6]),
            )
        )
    if not customers or customers[0].number != 0:
        raise InputError(f"{name or title}: the first customer must be the depot (number 0)")
    return SolomonInstance(
        name=name or title,
        vehicles=int(vehicles_s),
        capacity=int(capacity_s),
        depot=customers[0],
        customers=tuple(customers[1:]),
    )


def read_instance(path: Path) -> SolomonInstance:
    return parse_solomon(path.read_text(encoding="utf-8", errors="replace"), name=path.stem)


@dataclass(frozen=True, slots=True)
class BestKnown:
    vehicles: int
    distance: float


def read_bks(path: Path) -> dict[str, BestKnown]:
    """Best-known solutions by instance name (upper-cased) from a bks.csv."""
    out: dict[str, BestKnown] = {}
    if not path.exists():
        return out
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out[row["instance"].strip().upper()] = BestKnown(
                int(row["vehicles"]), float(row["distance"])
            )
    return out


def instance_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix.lower() == ".txt")
