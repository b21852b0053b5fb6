"""Phone analytics per rep: visits per day, time on site, travel, first-time fix.

* Visits and time on site: the geofence visits of the rep's phones (geo `visits`), plus
  manual check-ins/outs recorded on the phone at stops no geofence saw (phone_stop_work).
* Travel: the rep's phones' GPS fixes in time order, segments between consecutive fixes
  with both accuracies <= 100 m and at most 5 min apart; distance is their geodesic sum,
  travel time the duration of segments faster than 1 m/s (walking pace and above).
* First-time fix: a work order the rep completed is fixed the first time when it took one
  visit day (check-ins on one day only) and no other work order was opened at the same
  account within FOLLOW_UP_DAYS after its completion.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from psycopg import AsyncConnection

FOLLOW_UP_DAYS = 14

_DAILY = """
WITH reps AS (SELECT unnest(%(reps)s::bigint[]) AS rep_id),
auto AS (
  SELECT v.rep_id, v.arrived_at::date AS day, v.account_id,
         coalesce(v.duration_s, extract(epoch FROM (coalesce(v.departed_at, v.checked_in_at) - v.arrived_at))) AS s
  FROM visits v JOIN reps r ON r.rep_id = v.rep_id
  WHERE v.arrived_at >= %(lo)s AND v.arrived_at < %(hi)s::date + 1
),
manual AS (
  SELECT w.user_id AS rep_id, w.day, w.account_id,
         extract(epoch FROM (w.checkout_at - w.checkin_at)) AS s
  FROM phone_stop_work w JOIN reps r ON r.rep_id = w.user_id
  WHERE w.day BETWEEN %(lo)s AND %(hi)s AND w.checkin_at IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM auto a WHERE a.rep_id = w.user_id AND a.day = w.day
                    AND a.account_id = w.account_id)
),
onsite AS (
  SELECT rep_id, day, count(*) AS visits, sum(coalesce(s, 0)) AS on_site_s
  FROM (SELECT * FROM auto UNION ALL SELECT * FROM manual) x GROUP BY rep_id, day
),
fixes AS (
  SELECT m.user_id AS rep_id, f.time, f.accuracy_m,
         ST_MakePoint(f.lon, f.lat)::geography AS g,
         lag(ST_MakePoint(f.lon, f.lat)::geography) OVER w AS pg,
         lag(f.time) OVER w AS pt, lag(f.accuracy_m) OVER w AS pacc
  FROM gps_fix f JOIN geo_device_rep m ON m.device_id = f.device_id
  JOIN reps r ON r.rep_id = m.user_id
  WHERE f.time >= %(lo)s AND f.time < %(hi)s::date + 1
  WINDOW w AS (PARTITION BY f.device_id ORDER BY f.time)
),
segs AS (
  SELECT rep_id, time::date AS day, ST_Distance(pg, g) AS m,
         extract(epoch FROM (time - pt)) AS s
  FROM fixes
  WHERE pg IS NOT NULL AND accuracy_m <= 100 AND pacc <= 100 AND time - pt <= interval '5 min'
),
travel AS (
  SELECT rep_id, day, sum(m) AS travel_m,
         sum(CASE WHEN s > 0 AND m / s >= 1 THEN s ELSE 0 END) AS travel_s
  FROM segs GROUP BY rep_id, day
)
SELECT coalesce(o.rep_id, t.rep_id), coalesce(o.day, t.day), coalesce(o.visits, 0),
       coalesce(o.on_site_s, 0), coalesce(t.travel_m, 0), coalesce(t.travel_s, 0)
FROM onsite o FULL JOIN travel t ON t.rep_id = o.rep_id AND t.day = o.day
ORDER BY 1, 2
"""

_FTF = """
WITH done AS (
  SELECT w.id, w.assignee_id AS rep_id, w.account_id, w.created_at, w.completed_at
  FROM work_orders w
  WHERE w.status = 'done' AND w.assignee_id = ANY(%(reps)s)
    AND w.completed_at >= %(lo)s AND w.completed_at < %(hi)s::date + 1
)
SELECT d.rep_id, count(*) AS done,
  count(*) FILTER (WHERE
    (SELECT count(DISTINCT day) FROM (
        SELECT v.arrived_at::date AS day FROM visits v
        WHERE v.account_id = d.account_id AND v.rep_id = d.rep_id
          AND v.arrived_at BETWEEN d.created_at AND d.completed_at
        UNION SELECT s.day FROM phone_stop_work s
        WHERE s.work_order_id = d.id AND s.checkin_at IS NOT NULL) days) <= 1
    AND NOT EXISTS (SELECT 1 FROM work_orders f WHERE f.account_id = d.account_id
        AND f.id <> d.id AND f.created_at > d.completed_at
        AND f.created_at <= d.completed_at + make_interval(days => %(follow)s))
  ) AS first_time
FROM done d GROUP BY d.rep_id
"""


async def rep_analytics(
    conn: AsyncConnection[Any], reps: list[int], lo: date, hi: date
) -> tuple[list[tuple[Any, ...]], dict[int, tuple[int, int]]]:
    """(daily rows [rep, day, visits, on_site_s, travel_m, travel_s], {rep: (done, first_time)})."""
    args = {"reps": reps, "lo": lo, "hi": hi, "follow": FOLLOW_UP_DAYS}
    cur = await conn.execute(_DAILY, args)
    daily = list(await cur.fetchall())
    cur = await conn.execute(_FTF, args)
    ftf = {int(r[0]): (int(r[1]), int(r[2])) for r in await cur.fetchall()}
    return daily, ftf
