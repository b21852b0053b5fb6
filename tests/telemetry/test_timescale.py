"""The TimescaleDB path of telemetry.schema: hypertables, compression, retention and the
continuous aggregate, exercised on a real server when the extension can be loaded there.
Where it cannot (this machine: no TimescaleDB package in the Debian archive), every test
is reported as skipped with the reason; deploy/compose.yaml runs timescaledb-ha."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from fieldmesh import services
from kernel.settings import Settings
from telemetry.schema import PARTITIONED_TABLES, RETENTION, create_timeseries_tables


def _unavailable(conn: psycopg.Connection) -> str | None:
    if not conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone():
        return "the timescaledb extension is not installed on this PostgreSQL server"
    preload = conn.execute("SHOW shared_preload_libraries").fetchone()
    if not preload or "timescaledb" not in str(preload[0]):
        return "timescaledb is installed but not in shared_preload_libraries"
    return None


@pytest.fixture(scope="module")
def tsdb(services_up: Settings) -> Iterator[str]:
    with psycopg.connect(services_up.dsn_for("postgres"), autocommit=True) as conn:
        reason = _unavailable(conn)
    if reason is not None:
        pytest.skip(reason)
    name = f"fm_tsdb_{uuid.uuid4().hex[:8]}"
    dsn = services.create_database(services_up, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        create_timeseries_tables(conn, timescale=True)
    yield dsn
    services.drop_database(services_up, name)


def test_the_time_series_tables_are_hypertables_with_compression_and_retention(
    tsdb: str,
) -> None:
    with psycopg.connect(tsdb) as conn:
        hyper = {
            r[0]
            for r in conn.execute(
                "SELECT hypertable_name FROM timescaledb_information.hypertables"
            ).fetchall()
        }
        assert hyper == set(PARTITIONED_TABLES)
        jobs = conn.execute(
            "SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs"
            " WHERE hypertable_name IS NOT NULL"
        ).fetchall()
    kinds = {(p, h) for p, h, _ in jobs}
    for table in PARTITIONED_TABLES:
        assert ("policy_compression", table) in kinds
        assert ("policy_retention", table) in kinds
    drop_after = {h: c.get("drop_after") for p, h, c in jobs if p == "policy_retention"}
    assert all(str(RETENTION.days) in str(v) for v in drop_after.values()), drop_after


def test_a_chunk_compresses_and_stays_readable(tsdb: str) -> None:
    t0 = datetime.now(UTC) - timedelta(days=30)
    rows = [(t0 + timedelta(seconds=i), f"dev-{i % 5}", "temp", float(i), i) for i in range(2000)]
    with psycopg.connect(tsdb) as conn:
        with conn.cursor().copy(
            "COPY telemetry_sample (time, device_id, metric, value, seq) FROM STDIN"
        ) as copy:
            for r in rows:
                copy.write_row(r)
        conn.commit()
        chunks = conn.execute(
            "SELECT show_chunks('telemetry_sample', older_than => INTERVAL '7 days')"
        ).fetchall()
        assert chunks
        for (chunk,) in chunks:
            conn.execute("SELECT compress_chunk(%s::regclass, if_not_compressed => true)", (chunk,))
        conn.commit()
        compressed = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'telemetry_sample' AND is_compressed"
        ).fetchone()
        total = conn.execute(
            "SELECT count(*), sum(value) FROM telemetry_sample WHERE time >= %s", (t0,)
        ).fetchone()
    assert compressed is not None and compressed[0] >= 1
    assert total == (2000, float(sum(range(2000))))


def test_the_hourly_continuous_aggregate_refreshes(tsdb: str) -> None:
    t0 = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    with psycopg.connect(tsdb, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO telemetry_sample (time, device_id, metric, value, seq)"
            " SELECT %s + make_interval(mins => g), 'agg-dev', 'pressure', g, g"
            " FROM generate_series(0, 119) g",
            (t0,),
        )
        conn.execute(
            "CALL refresh_continuous_aggregate('telemetry_hourly', %s, %s)",
            (t0 - timedelta(hours=1), t0 + timedelta(hours=3)),
        )
        rows = conn.execute(
            "SELECT bucket, n, min, max FROM telemetry_hourly WHERE device_id = 'agg-dev'"
            " ORDER BY bucket"
        ).fetchall()
    assert [(r[1], r[2], r[3]) for r in rows] == [(60, 0.0, 59.0), (60, 60.0, 119.0)]
