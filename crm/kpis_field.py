"""The field-time KPIs' SQL: technician utilisation and travel vs on-site time, from what
the reps' phones and the planner record (crm.kpis serves them with their definitions).

Sources, all read in one statement (the tables of phone, geo, routing and telemetry are
read, never written: a report over the product's facts, like the other KPIs):
- on site: the phone's stop work (`phone_stop_work`, check-in to check-out) and the
  geofence visits detected from the rep's GPS (`visits`, arrival to departure); a stop
  recorded both ways counts once (the intervals are merged per rep and day).
- planned: the rep's stops in the newest ready routing plan of each day (`routing_stops`,
  travel_s is the planned drive to each stop).
- moving: the rep's phone fixes (`gps_fix` of the phones in `phone_devices`, or devices tied
  to the rep in `geo_device_rep`, read as one stream): the time between two consecutive
  fixes at most MAX_FIX_GAP_S apart while the speed is MOVING_MPS or more, unless the pair
  starts on site. Each fix is read once per rep, in time order, with plain arithmetic (no
  range per fix); this is the statement's cost: 1.7M fixes (20 reps, 30 days of 8 h at one
  fix per 10 s) took 3.6 s on the shared 2-core machine at load 9 (utilisation: 0.07 s).
  A moving-time rollup kept by the gateway would be the next step past that.

A rep's day is a date in their own time zone (users.timezone); a day is in the period when
any part of it is. The available time of a working day is the rep's shift as set on the
user (shift_start to shift_end, lunch included). The rows are the reps the caller may see:
themself, a manager's team, everyone for those who see everything ({reps}).
"""

from __future__ import annotations

MOVING_MPS = 2.0  # above walking pace and GPS jitter at rest
MAX_FIX_GAP_S = 300  # a longer silence (phone off, tunnel) is not counted as travel
EARTH_RADIUS_M = 6_371_008.8  # between fixes seconds apart a flat-earth distance is exact enough

# the reps and their period as local days; an unknown zone name reads as UTC
_REPS = """
reps AS (
  SELECT q.id, q.name, coalesce(z.tz, 'UTC') AS tz,
         extract(epoch FROM q.shift_end - q.shift_start)
           + CASE WHEN q.shift_end <= q.shift_start THEN 86400 ELSE 0 END AS shift_s,
         (%(since)s::timestamptz AT TIME ZONE coalesce(z.tz, 'UTC'))::date AS d0,
         ((%(until)s::timestamptz - interval '1 microsecond') AT TIME ZONE coalesce(z.tz, 'UTC'))::date
           AS d1
  FROM users q
  LEFT JOIN (SELECT name AS tz FROM pg_timezone_names) z ON z.tz = q.timezone
  WHERE {reps}
)"""

# on-site intervals merged per rep and local day, with their total and their span (first
# arrival to last departure)
_SITE = """
site AS (
  SELECT o.rep, (o.at AT TIME ZONE r.tz)::date AS day, range_agg(tstzrange(o.at, o.till)) AS m
  FROM reps r CROSS JOIN LATERAL (
    SELECT r.id, w.checkin_at, w.checkout_at FROM phone_stop_work w
    WHERE w.user_id = r.id AND w.checkout_at > w.checkin_at
      AND w.day BETWEEN r.d0 - 1 AND r.d1 + 1
    UNION ALL
    SELECT r.id, v.arrived_at, v.departed_at FROM visits v
    WHERE v.rep_id = r.id AND v.departed_at > v.arrived_at
      AND v.arrived_at >= %(since)s::timestamptz - interval '1 day'
      AND v.arrived_at < %(until)s::timestamptz + interval '1 day'
  ) o(rep, at, till)
  GROUP BY 1, 2
),
site_s AS (
  SELECT s.rep, s.day, s.m,
         (SELECT sum(extract(epoch FROM upper(x) - lower(x))) FROM unnest(s.m) x) AS onsite_s,
         extract(epoch FROM upper(s.m) - lower(s.m)) AS span_s
  FROM site s JOIN reps r ON r.id = s.rep WHERE s.day BETWEEN r.d0 AND r.d1
)"""

# each rep's planned days: the newest ready plan that routes them that day
_PLANNED = """
planned AS (
  SELECT DISTINCT ON (s.rep_id, p.plan_date) s.rep_id AS rep, p.plan_date AS day, p.id AS plan_id
  FROM reps r JOIN routing_stops s ON s.rep_id = r.id JOIN routing_plans p ON p.id = s.plan_id
  WHERE p.status = 'ready' AND p.plan_date BETWEEN r.d0 AND r.d1
  ORDER BY s.rep_id, p.plan_date, p.created_at DESC, p.id DESC
)"""

UTILISATION_SQL = f"""
WITH {_REPS}, {_SITE}, {_PLANNED}
SELECT r.name,
       round((100 * sum(coalesce(s.onsite_s, 0)) / sum(r.shift_s))::numeric, 1),
       round((sum(coalesce(s.onsite_s, 0)) / 3600)::numeric, 1),
       round((sum(r.shift_s) / 3600)::numeric, 1),
       count(*)
FROM (SELECT rep, day FROM site_s UNION SELECT rep, day FROM planned) w
JOIN reps r ON r.id = w.rep
LEFT JOIN site_s s ON s.rep = w.rep AND s.day = w.day
GROUP BY r.id, r.name ORDER BY r.name, r.id
"""

TRAVEL_SQL = f"""
WITH {_REPS}, {_SITE}, {_PLANNED},
onsite_all AS (  -- each rep's on-site time over the period, for the check of each fix pair
  SELECT rep, range_agg(m) AS m FROM site GROUP BY rep
),
moved AS (  -- moving time per rep and day: the rep's phones read as one stream (two phones
            -- reporting at once count each moment once); a pair that starts on site is not
            -- travel. Speed: the fix's own, else the distance from the previous fix.
  SELECT r.id AS rep, m.day, m.travel_s
  FROM reps r
  LEFT JOIN onsite_all o ON o.rep = r.id
  CROSS JOIN LATERAL (
    SELECT (f.t0 AT TIME ZONE r.tz)::date AS day,
           coalesce(sum(extract(epoch FROM f.t1 - f.t0)) FILTER (
             WHERE f.t1 - f.t0 <= interval '{MAX_FIX_GAP_S} seconds' AND f.mps >= {MOVING_MPS}
               AND NOT coalesce(o.m @> f.t0, false)), 0) AS travel_s
    FROM (
      SELECT lag(g.time) OVER w AS t0, g.time AS t1,
             coalesce(g.speed_mps, {EARTH_RADIUS_M} * sqrt(
               power(radians(g.lat - lag(g.lat) OVER w), 2)
               + power(cos(radians(g.lat)) * radians(g.lon - lag(g.lon) OVER w), 2))
               / nullif(extract(epoch FROM g.time - lag(g.time) OVER w), 0)) AS mps
      FROM gps_fix g
      WHERE g.device_id IN (SELECT d.device_id FROM phone_devices d WHERE d.user_id = r.id
                            UNION SELECT d.device_id FROM geo_device_rep d WHERE d.user_id = r.id)
        AND g.time >= %(since)s::timestamptz - interval '1 day'
        AND g.time < %(until)s::timestamptz + interval '1 day'
      WINDOW w AS (ORDER BY g.time)
    ) f
    WHERE f.t0 IS NOT NULL
    GROUP BY 1
  ) m
  WHERE m.day BETWEEN r.d0 AND r.d1
),
days AS (
  SELECT r.id, r.name, w.day, coalesce(s.onsite_s, 0) AS onsite_s,
         coalesce(s.span_s - s.onsite_s, 0) AS between_s,
         coalesce(m.travel_s, s.span_s - s.onsite_s, 0) AS travel_s,
         coalesce((SELECT sum(x.travel_s) FROM routing_stops x
                   WHERE x.plan_id = p.plan_id AND x.rep_id = w.rep), 0) AS planned_s
  FROM (SELECT rep, day FROM site_s UNION SELECT rep, day FROM planned
        UNION SELECT rep, day FROM moved) w
  JOIN reps r ON r.id = w.rep
  LEFT JOIN site_s s ON s.rep = w.rep AND s.day = w.day
  LEFT JOIN moved m ON m.rep = w.rep AND m.day = w.day
  LEFT JOIN planned p ON p.rep = w.rep AND p.day = w.day
)
SELECT name,
       round((sum(onsite_s) / 3600)::numeric, 1),
       round((sum(travel_s) / 3600)::numeric, 1),
       round((sum(between_s) / 3600)::numeric, 1),
       round((sum(planned_s) / 3600)::numeric, 1),
       round((100 * sum(travel_s) / nullif(sum(travel_s) + sum(onsite_s), 0))::numeric, 1),
       count(*)
FROM days GROUP BY id, name ORDER BY name, id
"""
