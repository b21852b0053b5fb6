"""When a device reads "online": the one definition every API and page uses.

A device is online when the server stored a message from it (telemetry, a GPS fix, an
event or a command ack: a row of `ingest_message`) within the last ONLINE_WINDOW_S
seconds, by the server's receive clock (`ingest_message.received_at`). It is offline when
its newest message is older than that, and unknown (None, "no data yet") when nothing was
ever stored from it.

The device's own status messages (`device_status`) do not decide it: they are retained on
the broker, stamped with the device's clock, and the last will a broker publishes on a lost
connection carries the time the device connected, so a stale retained "offline" outlived a
device that was streaming (issue 15) and a device's clock made "since" meaningless. Data
arriving proves the device is connected; a disconnected or silent device sends none and
reads offline once the window passes.

The window: the firmware samples every 10 s (equipment) and fixes every 5 s (phones) by
default, so five minutes is dozens of missed messages: a short network outage or a gateway
restart does not flip a device, and a device that stopped reads offline within five minutes.
"""

from __future__ import annotations

ONLINE_WINDOW_S = 300


def last_received_sql(device_id: str) -> str:
    """A scalar subquery: the server receive time of the newest stored message of the device
    whose id is the SQL expression `device_id` (a column), NULL when there is none."""
    return (
        f"(SELECT m.received_at FROM ingest_message m WHERE m.device_id = {device_id}"
        " ORDER BY m.seq DESC LIMIT 1)"
    )


def online_sql(last_received: str) -> str:
    """A boolean SQL expression from a receive-time expression: NULL when nothing was ever
    received, else whether it was within the window."""
    return f"({last_received} > now() - make_interval(secs => {ONLINE_WINDOW_S}))"
