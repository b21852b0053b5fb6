"""The CRM world of a simulated fleet, for the closed-loop demo and its test.

One territory around the fleet's centre; one customer account per simulated site (its
location is the site) with an auto geofence around it; a rep user per simulated phone (all
equipment skills, home where the phone starts the day, on shift all day, in the time zone
of the world's centre) mapped to the phone in `geo_device_rep`; an asset per equipment
device on its site's account (a standard contract, so a critical alert is urgent);
vibration rules per equipment model.

Idempotent: rows are keyed by the tenant (territory name, account external ids, rep
e-mails, asset device ids, rule ids), so seeding again updates them in place. Seeding
also resets what the previous run of the same simulation left behind (its devices'
alerts, its open alert work orders, its phones' geofence state), so every run starts a
fresh simulated day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from alerts.rules import Direction, Rule, RuleKind, Severity, validate_rules
from crm.demo_history import CURRENCY as HISTORY_CURRENCY
from crm.demo_history import HistoryCounts
from crm.demo_history import seed_history as crm_history
from crm.tenant import adopt_most_used_currency
from firmware_sim.fleet import Fleet
from firmware_sim.physics import EQUIPMENT_MODELS, METRICS

SKILLS = sorted({name.split("-", 1)[0] for name in EQUIPMENT_MODELS})

# (limit, clear_at) in mm/s: about 2.3x the model's nominal vibration at full load, which
# only a developing fault reaches; cleared once back under about 1.7x
VIBRATION_LIMITS_MM_S: dict[str, tuple[float, float]] = {
    "pump-p200": (6.0, 4.5),
    "compressor-c80": (9.5, 7.0),
    "chiller-x5": (4.0, 3.0),
}


@dataclass(frozen=True, slots=True)
class DemoWorld:
    territory_id: int
    accounts: dict[str, int]  # site id -> account id
    reps: dict[str, int]  # phone device id -> rep user id
    assets: dict[str, int]  # equipment device id -> asset id
    account_of_device: dict[str, int]  # equipment device id -> account id
    last_visit_id: int  # the highest visit id before this run: its visits come after
    timezone: str = "UTC"  # the IANA zone at the world's centre: its users' zone


def zone_at(lon: float, lat: float) -> str:
    """The IANA time zone at a point (tzfpy's offline boundaries); UTC at sea.

    The demo world's users see times in the zone where the world is, not UTC."""
    from tzfpy import get_tz

    zone = get_tz(lon, lat)
    return "UTC" if not zone or zone.startswith("Etc/") else zone


def vibration_rules(min_duration_s: float = 300.0) -> list[Rule]:
    rules = [
        Rule(
            rule_id=f"vibration-high.{model}",
            equipment_model=model,
            metric="vibration_mm_s",
            kind=RuleKind.THRESHOLD,
            direction=Direction.ABOVE,
            limit=limit,
            clear_at=clear_at,
            min_duration_s=min_duration_s,
            severity=Severity.CRITICAL,
        )
        for model, (limit, clear_at) in VIBRATION_LIMITS_MM_S.items()
    ]
    validate_rules(rules, {m: METRICS for m in EQUIPMENT_MODELS})
    return rules


def _upsert_rules(conn: psycopg.Connection[Any], rules: list[Rule]) -> None:
    for r in rules:
        conn.execute(
            """INSERT INTO alert_rules (rule_id, equipment_model, metric, kind, direction,
                   limit_value, clear_at, min_duration_s, rate_window_s, severity)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (rule_id) DO UPDATE SET
                   equipment_model = EXCLUDED.equipment_model, metric = EXCLUDED.metric,
                   kind = EXCLUDED.kind, direction = EXCLUDED.direction,
                   limit_value = EXCLUDED.limit_value, clear_at = EXCLUDED.clear_at,
                   min_duration_s = EXCLUDED.min_duration_s,
                   rate_window_s = EXCLUDED.rate_window_s, severity = EXCLUDED.severity,
                   updated_at = now()
               WHERE (alert_rules.limit_value, alert_rules.clear_at, alert_rules.min_duration_s,
                      alert_rules.severity)
                     IS DISTINCT FROM (EXCLUDED.limit_value, EXCLUDED.clear_at,
                                       EXCLUDED.min_duration_s, EXCLUDED.severity)""",
            (
                r.rule_id,
                r.equipment_model,
                r.metric,
                r.kind.value,
                r.direction.value,
                r.limit,
                r.clear_at,
                r.min_duration_s,
                r.rate_window_s,
                r.severity.value,
            ),
        )


def _one_id(row: tuple[Any, ...] | None) -> int:
    assert row is not None  # INSERT ... ON CONFLICT DO UPDATE ... RETURNING always returns
    return int(row[0])


def seed_world(
    conn: psycopg.Connection[Any],
    fleet: Fleet,
    *,
    fence_radius_m: float = 150.0,
    visit_dwell_s: float = 300.0,
    rule_min_duration_s: float = 300.0,
) -> DemoWorld:
    """Create or update the fleet's CRM world and reset the last run's leftovers; commits."""
    spec = fleet.spec
    tenant = spec.tenant
    territory_id = _one_id(
        conn.execute(
            """INSERT INTO territories (name, region, geom)
               VALUES (%s, 'simulation',
                       ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography,
                                          %s)::geometry)::geography)
               ON CONFLICT (name) DO UPDATE SET geom = EXCLUDED.geom, updated_at = now()
               RETURNING id""",
            (f"{tenant} field", spec.center[0], spec.center[1], spec.radius_m * 1.6),
        ).fetchone()
    )
    zone = zone_at(spec.center[0], spec.center[1])
    reps: dict[str, int] = {}
    for device_id, nav in fleet.phones():
        home = nav.home
        user_id = _one_id(
            conn.execute(
                """INSERT INTO users (email, name, role, territory_id, skills, home_location,
                                      shift_start, shift_end, timezone)
                   VALUES (%s, %s, 'rep', %s, %s,
                           ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography,
                           '00:00', '23:59:59', %s)
                   ON CONFLICT ((lower(email))) DO UPDATE SET territory_id = EXCLUDED.territory_id,
                       skills = EXCLUDED.skills, home_location = EXCLUDED.home_location,
                       shift_start = EXCLUDED.shift_start, shift_end = EXCLUDED.shift_end,
                       timezone = EXCLUDED.timezone, role = 'rep', active = true,
                       updated_at = now()
                   RETURNING id""",
                (
                    f"{device_id}@sim.fieldmesh.invalid",
                    f"Rep {device_id}",
                    territory_id,
                    SKILLS,
                    home[0],
                    home[1],
                    zone,
                ),
            ).fetchone()
        )
        conn.execute(
            """INSERT INTO geo_device_rep (device_id, user_id) VALUES (%s, %s)
               ON CONFLICT (device_id) DO UPDATE SET user_id = EXCLUDED.user_id""",
            (device_id, user_id),
        )
        reps[device_id] = user_id
    accounts: dict[str, int] = {}
    assets: dict[str, int] = {}
    account_of_device: dict[str, int] = {}
    for device_id, asset, site in fleet.equipment():
        account_id = _one_id(
            conn.execute(
                # in the currency of the deals and leads the history gives them (the
                # column's default, the tenant's currency, is USD until the first seeding
                # makes the accounts' EUR the default below)
                """INSERT INTO accounts (name, type, location, territory_id, external_id,
                                        currency)
                   VALUES (%s, 'customer', ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography,
                           %s, %s, %s)
                   ON CONFLICT (external_id) DO UPDATE SET location = EXCLUDED.location,
                       territory_id = EXCLUDED.territory_id, currency = EXCLUDED.currency,
                       updated_at = now()
                   RETURNING id""",
                (
                    f"{tenant} {site.site_id} ({asset.model.name})",
                    site.lon,
                    site.lat,
                    territory_id,
                    f"{tenant}:{site.site_id}",
                    HISTORY_CURRENCY,
                ),
            ).fetchone()
        )
        installed = datetime.fromtimestamp(asset.installed_s, UTC).date()
        assets[device_id] = _one_id(
            conn.execute(
                """INSERT INTO assets (account_id, device_id, equipment_model, serial,
                                       installed_on, contract_tier, sla_hours, required_skills)
                   VALUES (%s, %s, %s, %s, %s, 'standard', 48, %s)
                   ON CONFLICT (device_id) DO UPDATE SET account_id = EXCLUDED.account_id,
                       equipment_model = EXCLUDED.equipment_model, serial = EXCLUDED.serial,
                       installed_on = EXCLUDED.installed_on,
                       contract_tier = EXCLUDED.contract_tier, sla_hours = EXCLUDED.sla_hours,
                       required_skills = EXCLUDED.required_skills, updated_at = now()
                   RETURNING id""",
                (
                    account_id,
                    device_id,
                    asset.model.name,
                    f"SN-{device_id}",
                    installed,
                    [asset.model.name.split("-", 1)[0]],
                ),
            ).fetchone()
        )
        accounts[site.site_id] = account_id
        account_of_device[device_id] = account_id
    account_ids = sorted(accounts.values())
    # The auto site fences of these accounts (as geo's sync-account-fences writes them,
    # limited to this world's accounts).
    conn.execute(
        """INSERT INTO geofences (name, kind, geom, radius_m, dwell_s, account_id, auto)
           SELECT 'site: ' || a.name, 'circle', a.location, %s, %s, a.id, true
           FROM accounts a WHERE a.id = ANY(%s) AND a.location IS NOT NULL
           ON CONFLICT (account_id) WHERE auto DO UPDATE
             SET geom = EXCLUDED.geom, radius_m = EXCLUDED.radius_m, dwell_s = EXCLUDED.dwell_s,
                 name = EXCLUDED.name, active = true, updated_at = now()
             WHERE NOT (geofences.geom::geometry ~= EXCLUDED.geom::geometry)
                OR geofences.radius_m IS DISTINCT FROM EXCLUDED.radius_m
                OR geofences.dwell_s IS DISTINCT FROM EXCLUDED.dwell_s
                OR NOT geofences.active""",
        (fence_radius_m, visit_dwell_s, account_ids),
    )
    # the tenant works in the currency of its accounts: new records and the console's
    # forms take it, not USD
    adopt_most_used_currency(conn)
    _upsert_rules(conn, vibration_rules(rule_min_duration_s))
    _reset_last_run(conn, list(assets), account_ids, list(reps))
    last_visit = conn.execute("SELECT coalesce(max(id), 0) FROM visits").fetchone()
    conn.commit()
    return DemoWorld(
        territory_id, accounts, reps, assets, account_of_device, _one_id(last_visit), zone
    )


def _reset_last_run(
    conn: psycopg.Connection[Any], devices: list[str], account_ids: list[int], phones: list[str]
) -> None:
    """A new simulated day: the last run's alerts of these devices are forgotten (their
    equipment is simulated afresh), its unfinished alert work orders cancelled, its open
    visits closed and its phones' geofence state dropped."""
    conn.execute("DELETE FROM alerts WHERE device_id = ANY(%s)", (devices,))
    conn.execute(
        "UPDATE work_orders SET status = 'cancelled', updated_at = now(), version = version + 1"
        " WHERE account_id = ANY(%s) AND source = 'alert'"
        " AND status NOT IN ('done', 'cancelled')",
        (account_ids,),
    )
    conn.execute(
        "UPDATE visits SET status = 'completed', departed_at = arrived_at, duration_s = 0"
        " WHERE subject_id = ANY(%s) AND status = 'open'",
        (phones,),
    )
    conn.execute("DELETE FROM geo_subject_state WHERE subject_id = ANY(%s)", (phones,))


def morning_lead_s(
    now_s: float, min_lead_s: float, hour_utc: int = 8, spread_s: float = 7200.0
) -> float:
    """How far in the past a simulation must start so that it starts in the morning (UTC)
    of a day at least `min_lead_s` ago: the simulated working day then never crosses
    midnight while a demo or test runs, whatever the wall-clock time. The start lies
    between `hour_utc`:00 and `spread_s` later, the offset taken from the wall clock, so a
    second run does not replay the first one's simulated instants."""
    day_s = 86_400.0
    offset = hour_utc * 3600.0 + now_s % spread_s
    start = (now_s - min_lead_s - offset) // day_s * day_s + offset
    return now_s - start


@dataclass(frozen=True, slots=True)
class DemoLogin:
    role: str
    email: str
    password: str


def seed_logins(conn: psycopg.Connection[Any], world: DemoWorld, tenant: str) -> list[DemoLogin]:
    """One console login per role: an admin, the territory's manager (the reps report to
    them), a sales rep (rep role, no phone: works the territory's pipeline) and the first
    field rep (who carries a simulated phone), all in the world's time zone. Fresh random passwords each time, so a demo
    left running never has a known password; commits."""
    import secrets

    from identity.auth import hash_password

    def upsert(email: str, name: str, role: str, territory_id: int | None) -> str:
        password = secrets.token_urlsafe(12)
        conn.execute(
            """INSERT INTO users (email, name, role, territory_id, password_hash, timezone)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT ((lower(email))) DO UPDATE SET role = EXCLUDED.role,
                   territory_id = EXCLUDED.territory_id, password_hash = EXCLUDED.password_hash,
                   timezone = EXCLUDED.timezone, active = true, updated_at = now()""",
            (email, name, role, territory_id, hash_password(password), world.timezone),
        )
        return password

    logins = []
    admin = f"admin@{tenant}.demo.fieldmesh.invalid"
    logins.append(DemoLogin("admin", admin, upsert(admin, "Demo Admin", "admin", None)))
    manager = f"manager@{tenant}.demo.fieldmesh.invalid"
    password = upsert(manager, "Demo Manager", "manager", world.territory_id)
    logins.append(DemoLogin("manager", manager, password))
    sales = f"sales@{tenant}.demo.fieldmesh.invalid"
    logins.append(DemoLogin("sales", sales, upsert(sales, "Demo Sales", "rep", world.territory_id)))
    conn.execute(
        "UPDATE users SET manager_id = (SELECT id FROM users WHERE lower(email) = lower(%s))"
        " WHERE id = ANY(%s) OR lower(email) = lower(%s)",
        (manager, sorted(world.reps.values()), sales),
    )
    first_phone = sorted(world.reps)[0]
    row = conn.execute(
        "SELECT email FROM users WHERE id = %s", (world.reps[first_phone],)
    ).fetchone()
    assert row is not None
    rep_password = secrets.token_urlsafe(12)
    conn.execute(
        "UPDATE users SET password_hash = %s WHERE id = %s",
        (hash_password(rep_password), world.reps[first_phone]),
    )
    logins.append(DemoLogin("rep", str(row[0]), rep_password))
    conn.commit()
    return logins


def seed_history(conn: psycopg.Connection[Any], world: DemoWorld, tenant: str) -> HistoryCounts:
    """A year of CRM history on the world's accounts (crm.demo_history), owned by the
    sales rep where there is one, else the field reps; written once per tenant; commits."""
    owners = [
        int(r[0])
        for r in conn.execute(
            "SELECT id FROM users WHERE lower(email) = lower(%s)",
            (f"sales@{tenant}.demo.fieldmesh.invalid",),
        )
    ] or sorted(world.reps.values())
    accounts = [(a, owners[0], world.territory_id) for a in sorted(world.accounts.values())]
    conn.execute(
        "UPDATE accounts SET owner_id = %s WHERE id = ANY(%s) AND owner_id IS NULL",
        (owners[0], [a for a, _, _ in accounts]),
    )
    return crm_history(
        conn,
        tenant=tenant,
        accounts=accounts,
        owners=owners + sorted(world.reps.values()),
        now=datetime.now(UTC),
    )
