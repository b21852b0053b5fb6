"""CRM rows for crm_sync tests: a territory, reps with skills, an account, an asset."""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass

import psycopg

# Test receivers listen on loopback, which webhooks refuse unless the allow-list names it.
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


@dataclass(frozen=True)
class Site:
    territory_id: int
    account_id: int
    asset_id: int
    device_id: str
    pump_rep: int
    busy_pump_rep: int
    other_rep: int


def make_site(
    conn: psycopg.Connection,
    *,
    tier: str = "premium",
    sla_hours: int = 48,
    equipment_model: str = "pump-p200",
) -> Site:
    tag = uuid.uuid4().hex[:8]
    (territory,) = conn.execute(
        "INSERT INTO territories (name) VALUES (%s) RETURNING id", (f"t-{tag}",)
    ).fetchone() or (0,)

    def user(name: str, skills: list[str]) -> int:
        row = conn.execute(
            "INSERT INTO users (email, name, role, territory_id, skills) "
            "VALUES (%s, %s, 'rep', %s, %s) RETURNING id",
            (f"{name}-{tag}@example.com", name, territory, skills),
        ).fetchone()
        assert row is not None
        return int(row[0])

    pump_rep = user("pat", ["pump", "electrical"])
    busy = user("bo", ["pump"])
    other = user("cy", ["chiller"])
    (account,) = conn.execute(
        "INSERT INTO accounts (name, type, territory_id) VALUES (%s, 'customer', %s) RETURNING id",
        (f"Acme Water {tag}", territory),
    ).fetchone() or (0,)
    # bo already has open work
    conn.execute(
        "INSERT INTO work_orders (account_id, title, status, assignee_id) "
        "VALUES (%s, 'earlier job', 'assigned', %s)",
        (account, busy),
    )
    device = f"dev-{tag}"
    (asset,) = conn.execute(
        "INSERT INTO assets (account_id, device_id, equipment_model, serial, contract_tier, "
        "sla_hours) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (account, device, equipment_model, f"SN-{tag}", tier, sla_hours),
    ).fetchone() or (0,)
    conn.commit()
    return Site(territory, account, asset, device, pump_rep, busy, other)
