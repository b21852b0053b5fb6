"""Which devices the gateway refuses: decommissioned ones (their messages become dead letters).

The broker already refuses a decommissioned device's credentials; this catches what was
on its way before (queued in the broker, redelivered to the gateway). Called by the
gateway's writer inside each batch's transaction (`gateway.writer.DeviceAdmission`).
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg


def decommissioned_devices(conn: psycopg.Connection, device_ids: Sequence[str]) -> dict[str, str]:
    rows = conn.execute(
        "SELECT device_id, decommissioned_at FROM device_enrolment"
        " WHERE device_id = ANY(%s) AND state = 'decommissioned'",
        (list(device_ids),),
    ).fetchall()
    return {str(d): f"device decommissioned at {t.isoformat()}" for d, t in rows}
