"""Time-series storage: the one module that decides hypertables vs native partitions.

With the `timescaledb` extension available, `telemetry_sample` and `gps_fix` become
hypertables with compression and retention, and `telemetry_hourly` a continuous aggregate.
Without it (Debian, CI), the same tables are range-partitioned by week with BRIN indexes,
partitions are created ahead by `ensure_partitions`, and `telemetry_hourly` is a
materialized view that `refresh_aggregates` refreshes. Callers do not care which.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

PARTITIONED_TABLES = ("telemetry_sample", "gps_fix")
PARTITION_SPAN = timedelta(days=7)
RETENTION = timedelta(days=365)


class Executor(Protocol):
    """Anything with `execute(sql)`: an Alembic op, a SQLAlchemy or psycopg connection."""

    def execute(self, sql: str, /) -> object: ...


# The tables themselves: identical under both strategies apart from PARTITION BY.
SAMPLE_COLUMNS = """
    time      timestamptz      NOT NULL,
    device_id text             NOT NULL,
    metric    text             NOT NULL,
    value     double precision NOT NULL,
    seq       bigint           NOT NULL
"""

GPS_COLUMNS = """
    time        timestamptz      NOT NULL,
    device_id   text             NOT NULL,
    seq         bigint           NOT NULL,
    lon         double precision NOT NULL,
    lat         double precision NOT NULL,
    accuracy_m  real             NOT NULL,
    speed_mps   real,
    heading_deg real,
    -- generated from lon/lat: COPY stays fast and PostGIS queries get a geography
    geog        geography(Point, 4326)
                GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography) STORED
"""


def week_start(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    monday = (t - timedelta(days=t.weekday())).date()
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


def partition_ddl(table: str, start: datetime) -> str:
    end = start + PARTITION_SPAN
    name = f"{table}_p{start:%Y%m%d}"
    return (
        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )


def create_timeseries_tables(ex: Executor, timescale: bool) -> None:
    if timescale:
        ex.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        ex.execute(f"CREATE TABLE telemetry_sample ({SAMPLE_COLUMNS})")
        ex.execute(f"CREATE TABLE gps_fix ({GPS_COLUMNS})")
        for table in PARTITIONED_TABLES:
            ex.execute(
                f"SELECT create_hypertable('{table}', 'time', chunk_time_interval => INTERVAL '1 day')"
            )
            ex.execute(
                f"ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id')"
            )
            ex.execute(f"SELECT add_compression_policy('{table}', INTERVAL '7 days')")
            ex.execute(f"SELECT add_retention_policy('{table}', INTERVAL '{RETENTION.days} days')")
    else:
        ex.execute(f"CREATE TABLE telemetry_sample ({SAMPLE_COLUMNS}) PARTITION BY RANGE (time)")
        ex.execute(f"CREATE TABLE gps_fix ({GPS_COLUMNS}) PARTITION BY RANGE (time)")
        for table in PARTITIONED_TABLES:
            # Rows outside every weekly partition (very old backfills) land here.
            ex.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
            now = week_start(datetime.now(UTC))
            for k in range(-4, 9):
                ex.execute(partition_ddl(table, now + k * PARTITION_SPAN))
    ex.execute("CREATE INDEX telemetry_sample_time_brin ON telemetry_sample USING brin (time)")
    ex.execute("CREATE INDEX telemetry_sample_device_time ON telemetry_sample (device_id, time)")
    ex.execute("CREATE INDEX gps_fix_time_brin ON gps_fix USING brin (time)")
    ex.execute("CREATE INDEX gps_fix_device_time ON gps_fix (device_id, time)")
    _create_hourly(ex, timescale)


_HOURLY_SELECT = """
    SELECT device_id, metric, {bucket} AS bucket,
           count(*) AS n, min(value) AS min, max(value) AS max, avg(value) AS avg
    FROM telemetry_sample GROUP BY device_id, metric, {bucket}
"""


def _create_hourly(ex: Executor, timescale: bool) -> None:
    if timescale:
        ex.execute(
            "CREATE MATERIALIZED VIEW telemetry_hourly WITH (timescaledb.continuous) AS"
            + _HOURLY_SELECT.format(bucket="time_bucket(INTERVAL '1 hour', time)")
        )
        ex.execute(
            "SELECT add_continuous_aggregate_policy('telemetry_hourly', start_offset => INTERVAL '3 days',"
            " end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes')"
        )
    else:
        ex.execute(
            "CREATE MATERIALIZED VIEW telemetry_hourly AS"
            + _HOURLY_SELECT.format(bucket="date_trunc('hour', time)")
            + " WITH NO DATA"
        )
        # CONCURRENTLY refreshes need a unique index.
        ex.execute(
            "CREATE UNIQUE INDEX telemetry_hourly_key ON telemetry_hourly (device_id, metric, bucket)"
        )


def drop_timeseries_tables(ex: Executor) -> None:
    ex.execute("DROP MATERIALIZED VIEW IF EXISTS telemetry_hourly")
    for table in PARTITIONED_TABLES:
        ex.execute(f"DROP TABLE IF EXISTS {table} CASCADE")


def ensure_partitions(conn: Any, weeks_ahead: int = 8) -> int:
    """Create the coming weekly partitions (native partitioning only); returns how many.

    Called by the gateway at start and periodically, so rows never pile up in the default
    partition. A week whose rows already landed in the default partition (a long-stopped
    gateway) is left there and logged: moving them is an operator's decision.
    """
    import logging

    import psycopg

    log = logging.getLogger(__name__)
    is_partitioned = conn.execute(
        "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid WHERE c.relname = 'telemetry_sample'"
    ).fetchone()
    if not is_partitioned:
        return 0  # hypertables manage their own chunks
    created = 0
    start = week_start(datetime.now(UTC))
    for table in PARTITIONED_TABLES:
        for k in range(weeks_ahead + 1):
            begin = start + k * PARTITION_SPAN
            name = f"{table}_p{begin:%Y%m%d}"
            exists = conn.execute("SELECT 1 FROM pg_class WHERE relname = %s", (name,)).fetchone()
            if exists:
                continue
            try:
                with conn.transaction():
                    conn.execute(partition_ddl(table, begin))
                created += 1
            except psycopg.errors.CheckViolation:
                log.warning("rows for %s are in %s_default; partition not created", name, table)
    return created
