"""Fleet health from what the devices reported: per device, and per equipment model.

- online: telemetry.online's one definition (a message received within its window);
- last seen: the newest stored message (`ingest_message.received_at`, the server's clock);
- uptime: time since the device's status last turned online (0 when offline);
- message rate: stored messages per hour over the window;
- alert rate: alerts raised per device-day over the window;
- MTBF per model: device-hours observed in the window divided by failures, a failure
  being a critical alert (None when there was none: no estimate, not infinity).
A device's model is its asset's, else the one it enrolled with.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection, sql

from telemetry.online import last_received_sql, online_sql

_ONLINE = online_sql("rx.t")
_DEVICE = f"""
SELECT d.device_id, coalesce(a.equipment_model, e.equipment_model) AS model,
       e.state AS enrolment, {_ONLINE} AS online, s.changed_at, s.firmware,
       CASE WHEN {_ONLINE} AND s.online THEN greatest(extract(epoch FROM now() - s.changed_at), 0)
            ELSE 0 END AS uptime_s,
       rx.t AS last_seen,
       (SELECT count(*) FROM ingest_message m WHERE m.device_id = d.device_id
          AND m.received_at > now() - %(window)s) AS messages,
       (SELECT count(*) FROM alerts al WHERE al.device_id = d.device_id
          AND al.raised_at > now() - %(window)s) AS alerts,
       (SELECT count(*) FROM alerts al WHERE al.device_id = d.device_id AND al.severity = 'critical'
          AND al.raised_at > now() - %(window)s) AS failures
FROM device d
LEFT JOIN LATERAL (SELECT {last_received_sql("d.device_id")} AS t) rx ON true
LEFT JOIN device_status s USING (device_id)
LEFT JOIN device_enrolment e USING (device_id)
LEFT JOIN assets a USING (device_id)
WHERE d.device_id = %(device)s
"""


async def device_health(
    conn: AsyncConnection[Any], device_id: str, window: timedelta
) -> dict[str, Any] | None:
    cur = await conn.execute(_DEVICE, {"device": device_id, "window": window})
    row = await cur.fetchone()
    if row is None:
        return None
    hours = window.total_seconds() / 3600.0
    return {
        "device_id": row[0],
        "equipment_model": row[1],
        "enrolment": row[2],
        "online": row[3],
        "status_changed_at": row[4],
        "firmware": row[5],
        "uptime_s": float(row[6] or 0.0),
        "last_seen": row[7],
        "messages_per_hour": round(int(row[8]) / hours, 3),
        "alerts": int(row[9]),
        "failures": int(row[10]),
    }


_MODELS = f"""
WITH fleet AS (
  SELECT d.device_id, coalesce(a.equipment_model, e.equipment_model, 'unknown') AS model,
         coalesce({_ONLINE}, false) AS online, s.firmware,
         extract(epoch FROM least(now() - d.created_at, %(window)s)) / 3600.0 AS hours
  FROM device d
  LEFT JOIN LATERAL (SELECT {last_received_sql("d.device_id")} AS t) rx ON true
  LEFT JOIN device_status s USING (device_id)
  LEFT JOIN device_enrolment e USING (device_id)
  LEFT JOIN assets a USING (device_id)
  WHERE d.kind = 'equipment' AND coalesce(e.state, 'active') = 'active' AND {{visible}}
),
msgs AS (
  SELECT m.device_id, count(*) AS n, max(m.received_at) AS last_seen
  FROM ingest_message m JOIN fleet f USING (device_id)
  WHERE m.received_at > now() - %(window)s GROUP BY m.device_id
),
al AS (
  SELECT x.device_id, count(*) AS n, count(*) FILTER (WHERE x.severity = 'critical') AS failures
  FROM alerts x JOIN fleet f USING (device_id)
  WHERE x.raised_at > now() - %(window)s GROUP BY x.device_id
)
SELECT f.model, count(*) AS devices, count(*) FILTER (WHERE f.online) AS online,
       coalesce(sum(msgs.n), 0) AS messages, coalesce(sum(al.n), 0) AS alerts,
       coalesce(sum(al.failures), 0) AS failures, coalesce(sum(f.hours), 0) AS device_hours,
       max(msgs.last_seen) AS last_seen
FROM fleet f LEFT JOIN msgs USING (device_id) LEFT JOIN al USING (device_id)
GROUP BY f.model ORDER BY f.model
"""

_FIRMWARE = """
SELECT coalesce(a.equipment_model, e.equipment_model, 'unknown'), coalesce(s.firmware, 'unknown'),
       count(*)
FROM device d
LEFT JOIN device_status s USING (device_id)
LEFT JOIN device_enrolment e USING (device_id)
LEFT JOIN assets a USING (device_id)
WHERE d.kind = 'equipment' AND coalesce(e.state, 'active') = 'active' AND {visible}
GROUP BY 1, 2
"""


async def model_health(
    conn: AsyncConnection[Any],
    window: timedelta,
    visible: sql.Composable,
    visible_params: list[Any],
) -> list[dict[str, Any]]:
    hours = window.total_seconds() / 3600.0
    cur = await conn.execute(sql.SQL(_FIRMWARE).format(visible=visible), visible_params)
    firmware: dict[str, dict[str, int]] = {}
    for model, fw, n in await cur.fetchall():
        firmware.setdefault(str(model), {})[str(fw)] = int(n)
    # named parameters and the scope's positional ones cannot mix: inline the window
    query = sql.SQL(_MODELS.replace("%(window)s", "{window}")).format(
        visible=visible, window=sql.Literal(window)
    )
    cur = await conn.execute(query, visible_params)
    out = []
    for (
        model,
        devices,
        online,
        messages,
        alerts,
        failures,
        device_hours,
        last_seen,
    ) in await cur.fetchall():
        device_hours = float(device_hours)
        out.append(
            {
                "equipment_model": model,
                "devices": int(devices),
                "online": int(online),
                "last_seen": last_seen,
                "messages_per_hour": round(int(messages) / hours, 3),
                "alerts": int(alerts),
                "alerts_per_device_day": round(int(alerts) / max(device_hours / 24.0, 1e-9), 4)
                if device_hours
                else 0.0,
                "failures": int(failures),
                "mtbf_h": round(device_hours / int(failures), 2) if failures else None,
                "device_hours": round(device_hours, 2),
                "firmware": firmware.get(str(model), {}),
            }
        )
    return out
