"""Staged OTA rollouts: choose the devices, send in waves, halt on failures (devices.policy).

The population is the active enrolled devices of the image's equipment model (and group,
when given), among the devices the creator may see. `tick` advances every running
rollout: it reconciles command states, copies them onto the rollout's devices, asks the
policy what to do, and sends the next wave; the `devices.rollouts` job calls it
periodically, and one rollout is advanced by one worker at a time (row lock, SKIP LOCKED).
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg import AsyncConnection, sql

from devices import commands, firmware, policy
from kernel.errors import Conflict, NotFound, Unprocessable
from kernel.settings import Settings

log = logging.getLogger(__name__)

ROLLOUT_COLUMNS = (
    "id, sha256, equipment_model, device_group, percent, wave_size, failure_threshold,"
    " min_results, command_timeout_s, state, reason, created_by, created_at, finished_at"
)


async def create(
    conn: AsyncConnection[Any],
    *,
    image: firmware.Image,
    device_group: str | None,
    percent: float,
    wave_size: int,
    failure_threshold: float,
    min_results: int,
    command_timeout_s: int,
    created_by: int,
    visible: sql.Composable,
    visible_params: list[Any],
) -> tuple[int, int]:
    """Record a rollout and its chosen devices; (rollout id, devices chosen)."""
    cur = await conn.execute(
        "INSERT INTO firmware_rollout (sha256, equipment_model, device_group, percent, wave_size,"
        " failure_threshold, min_results, command_timeout_s, created_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            image.sha256,
            image.equipment_model,
            device_group,
            percent,
            wave_size,
            failure_threshold,
            min_results,
            command_timeout_s,
            created_by,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    rollout_id = int(row[0])
    population = await _population(
        conn, image.equipment_model, device_group, visible, visible_params
    )
    chosen = policy.choose(rollout_id, population, percent)
    if chosen:
        await conn.execute(
            "INSERT INTO rollout_device (rollout_id, device_id, rank)"
            " SELECT %s, d, r FROM unnest(%s::text[], %s::text[]) AS u(d, r)",
            (rollout_id, chosen, [policy.rank(rollout_id, d) for d in chosen]),
        )
    else:
        await conn.execute(
            "UPDATE firmware_rollout SET state = 'completed', finished_at = now(),"
            " reason = 'no device of this model and group' WHERE id = %s",
            (rollout_id,),
        )
    return rollout_id, len(chosen)


async def _population(
    conn: AsyncConnection[Any],
    equipment_model: str,
    device_group: str | None,
    visible: sql.Composable,
    visible_params: list[Any],
) -> list[str]:
    query = sql.SQL(
        "SELECT e.device_id FROM device_enrolment e LEFT JOIN assets a USING (device_id)"
        " WHERE e.state = 'active' AND coalesce(a.equipment_model, e.equipment_model) = %s"
        " AND (%s::text IS NULL OR e.device_group = %s) AND {}"
    ).format(visible)
    cur = await conn.execute(query, [equipment_model, device_group, device_group, *visible_params])
    return [str(r[0]) for r in await cur.fetchall()]


async def progress(conn: AsyncConnection[Any], rollout_id: int) -> policy.Progress:
    cur = await conn.execute(
        "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'sent'),"
        " count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state = 'failed')"
        " FROM rollout_device WHERE rollout_id = %s",
        (rollout_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return policy.Progress(*(int(x) for x in row))


_SYNC_DEVICES = """
UPDATE rollout_device r
SET state = CASE c.state WHEN 'acked' THEN 'succeeded' WHEN 'sent' THEN 'sent'
                 WHEN 'cancelled' THEN 'skipped' ELSE 'failed' END
FROM device_command c
WHERE c.command_id = r.command_id AND r.rollout_id = %s AND r.state <> 'skipped'
"""


async def advance(conn: AsyncConnection[Any], settings: Settings, rollout_id: int) -> str | None:
    """One step of one rollout (inside the caller's transaction); its state, or None when
    another worker holds it."""
    cur = await conn.execute(
        "SELECT sha256, wave_size, failure_threshold, min_results, command_timeout_s, state,"
        " created_by FROM firmware_rollout WHERE id = %s FOR UPDATE SKIP LOCKED",
        (rollout_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    sha, wave, threshold, min_results, timeout_s, state, created_by = row
    await commands.reconcile(conn)
    await conn.execute(_SYNC_DEVICES, (rollout_id,))
    if state != "running":
        return str(state)
    p = await progress(conn, rollout_id)
    d = policy.decide(p, int(wave), float(threshold), int(min_results))
    if d.state != "running":
        await conn.execute(
            "UPDATE firmware_rollout SET state = %s, reason = %s, finished_at = now() WHERE id = %s",
            (d.state, d.reason, rollout_id),
        )
        log.info("rollout %d %s %s", rollout_id, d.state, d.reason)
        return d.state
    if d.send:
        image = await firmware.get_image(conn, sha)
        cur = await conn.execute(
            "SELECT device_id FROM rollout_device WHERE rollout_id = %s AND state = 'pending'"
            " ORDER BY rank LIMIT %s",
            (rollout_id, d.send),
        )
        for (device_id,) in await cur.fetchall():
            try:
                cmd_id = await commands.send(
                    conn,
                    settings,
                    device_id,
                    "ota",
                    firmware.ota_args(settings, image, device_id),
                    created_by=created_by,
                    timeout_s=float(timeout_s),
                    rollout_id=rollout_id,
                )
            except Conflict:  # decommissioned meanwhile
                await conn.execute(
                    "UPDATE rollout_device SET state = 'skipped' WHERE rollout_id = %s AND device_id = %s",
                    (rollout_id, device_id),
                )
                continue
            await conn.execute(
                "UPDATE rollout_device SET state = 'sent', command_id = %s"
                " WHERE rollout_id = %s AND device_id = %s",
                (cmd_id, rollout_id, device_id),
            )
    return "running"


async def tick(conn: AsyncConnection[Any], settings: Settings) -> dict[int, str]:
    """Advance every running rollout, each in a transaction of its own."""
    cur = await conn.execute("SELECT id FROM firmware_rollout WHERE state = 'running' ORDER BY id")
    ids = [int(r[0]) for r in await cur.fetchall()]
    await conn.commit()
    out: dict[int, str] = {}
    for rid in ids:
        async with conn.transaction():
            st = await advance(conn, settings, rid)
        if st is not None:
            out[rid] = st
    return out


async def widen(
    conn: AsyncConnection[Any],
    rollout_id: int,
    percent: float,
    visible: sql.Composable,
    visible_params: list[Any],
) -> int:
    """Raise a rollout's percentage: the next devices in its order join; how many joined.
    A completed rollout runs again; a halted or cancelled one stays stopped."""
    cur = await conn.execute(
        "SELECT equipment_model, device_group, percent, state FROM firmware_rollout"
        " WHERE id = %s FOR UPDATE",
        (rollout_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no rollout {rollout_id}", field="id")
    model, group, current, state = row
    if state in ("halted", "cancelled"):
        raise Conflict(f"rollout {rollout_id} is {state}: start a new one", field="id")
    if percent <= float(current):
        raise Unprocessable(
            f"percent: {percent:g} is not above the current {float(current):g}", field="percent"
        )
    population = await _population(conn, model, group, visible, visible_params)
    chosen = policy.choose(rollout_id, population, percent)
    cur = await conn.execute(
        "INSERT INTO rollout_device (rollout_id, device_id, rank)"
        " SELECT %s, d, r FROM unnest(%s::text[], %s::text[]) AS u(d, r)"
        " ON CONFLICT DO NOTHING",
        (rollout_id, chosen, [policy.rank(rollout_id, d) for d in chosen]),
    )
    added = max(cur.rowcount, 0)
    await conn.execute(
        "UPDATE firmware_rollout SET percent = %s, state = 'running', reason = '',"
        " finished_at = NULL WHERE id = %s",
        (percent, rollout_id),
    )
    return added


async def cancel(conn: AsyncConnection[Any], rollout_id: int) -> bool:
    cur = await conn.execute(
        "UPDATE firmware_rollout SET state = 'cancelled', finished_at = now(),"
        " reason = 'cancelled' WHERE id = %s AND state = 'running' RETURNING id",
        (rollout_id,),
    )
    return await cur.fetchone() is not None
