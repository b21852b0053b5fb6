"""bench-console: the console's CRM at scale: page loads, global search, grouped reports.

Seeds contacts (1M; 100k with --quick), activities (2M; 200k) and accounts in a fresh
database, starts the app (`fieldmesh serve`), and measures:
- page loads in headless Chromium (bench/console_probe.cjs): navigation to the list's first
  row, the record page's fields and audit, a dashboard's tiles ready; 20 loads each;
- global search (/console/api/search, misspelled names of existing contacts, as a rep in one
  territory and as an admin): p50/p99 over HTTP, and the share that found that contact;
  baseline in the same run: the contacts list's own `q` search
  (ILIKE substring, /api/v1/contacts?q=) for the correctly spelled names;
- a report over the activities grouped by type and month (two dimensions): p50/p95 over
  HTTP (answered from the hourly rollup, `crm.rollups`); baseline in the same run: the same
  report from the activities table (`run_report(..., rollups=False)` in this process, so
  without HTTP; the rollup path is timed the same way beside it, and both must give the
  same rows), and `SELECT count(*) FROM activities` (one full scan, the floor of any
  grouped report over the table);
- XLSX export of 100k list rows (/api/v1/list_exports/contacts.xlsx with the contacts
  screen's columns: all contacts in the quick run, two territories of twenty in the full one);
  baseline: the same rows as CSV (the database and paging part of the export).
The machine's load average is printed after each part (others' work inflates every figure).
Last line: JSON with list_page_p95_ms, record_page_p95_ms, dashboard_p95_ms, search_p99_ms,
report_p95_ms, xlsx_100k_s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from typing import Any

import numpy as np
import psycopg

from bench.web import _port, _wait_http
from fieldmesh import services
from fieldmesh.migrate import upgrade
from kernel.settings import PROJECT_ROOT, load_settings

OUT = PROJECT_ROOT / "bench" / "out"
FIRST = [
    "Anna",
    "Bruno",
    "Chloé",
    "David",
    "Elena",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Karin",
    "Louis",
    "Maria",
    "Nils",
    "Olga",
    "Pablo",
    "Quentin",
    "Rosa",
    "Sven",
    "Tamara",
]
LAST = [
    "Schmidt",
    "Dubois",
    "Rossi",
    "Garcia",
    "Novak",
    "Jensen",
    "Moreau",
    "Bianchi",
    "Keller",
    "Lambert",
    "Fischer",
    "Martin",
    "Weber",
    "Romano",
    "Meyer",
    "Laurent",
    "Wagner",
    "Costa",
]
PASSWORD = "bench-password-1"


def _call(base: str, path: str, token: str, body: Any = None) -> tuple[float, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        base + path,
        data=data,
        method="POST" if body is not None else "GET",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        out = json.loads(r.read())
    return (time.perf_counter() - t0) * 1000, out


def _token(base: str, email: str) -> str:
    req = urllib.request.Request(
        base + "/api/v1/auth/token",
        data=json.dumps({"email": email, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return str(json.loads(r.read())["token"])


def seed(dsn: str, contacts: int, activities: int, accounts: int) -> dict[str, Any]:
    from identity.auth import hash_password

    t0 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        tids = [
            r[0]
            for r in conn.execute(
                "INSERT INTO territories (name) SELECT 'T' || g FROM generate_series(1, 20) g RETURNING id"
            ).fetchall()
        ]
        pw = hash_password(PASSWORD)
        conn.execute(
            "INSERT INTO users (email, name, role, password_hash, territory_id) VALUES"
            " ('admin@bench.test', 'Admin', 'admin', %s, NULL), ('rep@bench.test', 'Rep', 'rep', %s, %s)",
            (pw, pw, tids[0]),
        )
        conn.execute(
            "INSERT INTO accounts (name, type, territory_id, annual_revenue)"
            " SELECT 'Account ' || g, (ARRAY['customer','prospect','partner'])[1 + g %% 3],"
            " (%s::bigint[])[1 + g %% 20], g * 10 FROM generate_series(1, %s) g",
            (tids, accounts),
        )
        # contacts: first/last names from the lists with a numeric suffix on the last name
        conn.execute(
            "INSERT INTO contacts (first_name, last_name, email, phone, territory_id)"
            " SELECT (%s::text[])[1 + g %% %s], (%s::text[])[1 + (g / 7) %% %s] || (g %% 997),"
            " 'c' || g || '@example.test', '+33 6 ' || lpad((g %% 100000000)::text, 8, '0'),"
            " (%s::bigint[])[1 + g %% 20] FROM generate_series(1, %s) g",
            (FIRST, len(FIRST), LAST, len(LAST), tids, contacts),
        )
        conn.execute(
            "INSERT INTO activities (type, subject, status, account_id, territory_id, start_at)"
            " SELECT (ARRAY['call','email','meeting','task','note'])[1 + g %% 5], 'Activity ' || g,"
            " (ARRAY['open','done'])[1 + g %% 2], 1 + g %% %s, (%s::bigint[])[1 + g %% 20],"
            " now() - make_interval(hours => g %% 8760) FROM generate_series(1, %s) g",
            (accounts, tids, activities),
        )
        # a running database's state, not a bulk load's: autovacuum would have set the
        # visibility map (index-only scans) and the statistics long before anyone reports
        conn.execute("VACUUM ANALYZE")
        account = conn.execute("SELECT min(id) FROM accounts").fetchone()
        assert account is not None
    print(
        f"seeded {contacts:,} contacts, {activities:,} activities, {accounts:,} accounts in {time.perf_counter() - t0:.0f} s"
    )
    return {"account": int(account[0])}


def _download(base: str, path: str, token: str) -> tuple[float, int]:
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        size = len(r.read())
    return time.perf_counter() - t0, size


def loadavg() -> float:
    """The machine's 1-minute load average (others' work included): printed beside every
    figure, which it inflates."""
    with open("/proc/loadavg") as fh:
        return float(fh.read().split()[0])


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q)) if xs else float("nan")


def _direct_reports(
    dsn: str, definition: dict[str, Any], runs: int
) -> tuple[dict[str, list[float]], bool, str]:
    """The report in this process, from the table and from the rollup, alternately, as the
    admin and as the rep: milliseconds per path; whether both paths gave the same rows; the
    rollup that answered and its row count."""
    import msgspec
    from psycopg import AsyncConnection, sql

    from crm.reports import ReportDefinition, run_report
    from crm.rollups import choose
    from kernel.principal import Principal

    d = msgspec.convert(definition, ReportDefinition)

    async def go() -> tuple[dict[str, list[float]], bool, str]:
        async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT id, email, role, territory_id FROM users WHERE email LIKE '%%@bench.test'"
            )
            people = {
                r[2]: Principal(r[0], r[1], r[2], r[3], (r[0],), (r[3],) if r[3] else ())
                for r in await cur.fetchall()
            }
            ms: dict[str, list[float]] = {}
            same = True
            for _ in range(runs):
                for who, p in people.items():
                    rows = []
                    for path, rollups in (("raw", False), ("rollup", True)):
                        t0 = time.perf_counter()
                        result = await run_report(conn, p, d, rollups=rollups)
                        ms.setdefault(f"{who}_{path}", []).append((time.perf_counter() - t0) * 1000)
                        rows.append(result.rows)
                    same = same and rows[0] == rows[1]
            chosen = await choose(conn, d, "UTC")
            assert chosen is not None, "the bench's report is one a rollup answers"
            table = sql.Identifier(chosen.table)
            n = await (
                await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table))
            ).fetchone()
            return ms, same, f"{chosen.table}, {int(n[0]) if n else 0:,} rows"

    return asyncio.run(go())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    contacts, activities, accounts = (
        (100_000, 200_000, 5_000) if args.quick else (1_000_000, 2_000_000, 20_000)
    )
    loads = 5 if args.quick else 20
    settings = load_settings()
    services.stop_at_exit_if_started(settings)
    services.ensure_up(settings, migrate=False)
    dsn = services.create_database(settings, f"fm_bench_console_{uuid.uuid4().hex[:6]}")
    OUT.mkdir(parents=True, exist_ok=True)
    log = open(OUT / "console-app.log", "wb")  # noqa: SIM115
    proc = None
    try:
        upgrade(dsn)
        w = seed(dsn, contacts, activities, accounts)
        port = _port()
        env = dict(os.environ, DATABASE_URL=dsn, FIELDMESH_STATE_DIR=str(settings.state_dir))
        proc = subprocess.Popen(
            [sys.executable, "-m", "fieldmesh", "serve", "--port", str(port)],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/health")
        admin, rep = _token(base, "admin@bench.test"), _token(base, "rep@bench.test")
        load = {"start": loadavg()}
        # the list export: 100k contacts with the contacts screen's columns
        cols = "first_name,last_name,company_name,title,email,phone,owner_id"
        export_q: dict[str, str] = {"columns": cols}
        if not args.quick:
            with psycopg.connect(dsn) as conn:
                two = [r[0] for r in conn.execute("SELECT id FROM territories ORDER BY id LIMIT 2")]
            export_q["filter"] = json.dumps({"field": "territory_id", "op": "in", "value": two})
        qs = urllib.parse.urlencode(export_q)
        xlsx_s, xlsx_bytes = _download(base, f"/api/v1/list_exports/contacts.xlsx?{qs}", admin)
        csv_s, _ = _download(base, f"/api/v1/list_exports/contacts.csv?{qs}", admin)
        load["export"] = loadavg()
        # misspelt names of contacts that exist (half in the rep's territory, searched by the
        # rep; half anywhere, by the admin): a letter of the first name dropped, two letters
        # of the last name swapped; found = that very contact among the hits
        rng = np.random.default_rng(5)
        with psycopg.connect(dsn) as conn:
            conn.execute("SELECT setseed(0.5)")
            rep_tid = conn.execute(
                "SELECT territory_id FROM users WHERE email = 'rep@bench.test'"
            ).fetchone()
            assert rep_tid is not None
            picks = {
                tok: conn.execute(
                    "SELECT id, first_name, last_name FROM contacts WHERE territory_id = %s"
                    " OR %s ORDER BY random() LIMIT 100",
                    (rep_tid[0], tok == admin),
                ).fetchall()
                for tok in (rep, admin)
            }
        queries: dict[str, list[tuple[str, str]]] = {rep: [], admin: []}
        exact = []
        for tok, rows in picks.items():
            for cid, f, last in rows:
                # the name's letters, not the number that makes the seeded names unique
                i = int(rng.integers(1, len(last.rstrip("0123456789")) - 2))
                typo = last[:i] + last[i + 1] + last[i] + last[i + 2 :]
                j = int(rng.integers(1, len(f)))
                queries[tok].append((str(cid), f"{f[:j]}{f[j + 1 :]} {typo}"))
                exact.append(last)
        search_ms: list[float] = []
        found = 0
        for tok, qs_ in queries.items():
            for cid, text in qs_:
                ms, r = _call(
                    base, "/console/api/search?" + urllib.parse.urlencode({"q": text}), tok
                )
                search_ms.append(ms)
                found += any(h["type"] == "contacts" and h["id"] == cid for h in r["items"])
        load["search"] = loadavg()
        list_ms = [
            _call(
                base, "/api/v1/contacts?" + urllib.parse.urlencode({"q": text, "limit": 10}), tok
            )[0]
            for tok, text in zip(
                [rep] * len(picks[rep]) + [admin] * len(picks[admin]), exact, strict=True
            )
        ]
        definition = {
            "entity": "activities",
            "group_by": [{"field": "type"}, {"field": "occurred_at", "bucket": "month"}],
            "measures": [{"agg": "count"}],
            "chart": "bar",
        }
        report_ms = [_call(base, "/api/v1/reports/run", admin, definition)[0] for _ in range(20)]
        report_rep_ms = [_call(base, "/api/v1/reports/run", rep, definition)[0] for _ in range(10)]
        direct_ms, same_rows, rollup_read = _direct_reports(
            dsn, definition, 10 if args.quick else 20
        )
        load["report"] = loadavg()
        with psycopg.connect(dsn) as conn:
            scan_ms = []
            for _ in range(5):
                t0 = time.perf_counter()
                conn.execute("SELECT count(*) FROM activities").fetchone()
                scan_ms.append((time.perf_counter() - t0) * 1000)
        _, rep_saved = _call(
            base, "/api/v1/reports", admin, {"name": "Activities", "definition": definition}
        )
        _, opps = _call(
            base,
            "/api/v1/reports",
            admin,
            {
                "name": "Accounts by type",
                "definition": {
                    "entity": "accounts",
                    "group_by": [{"field": "type"}],
                    "measures": [{"agg": "count"}, {"agg": "sum", "field": "annual_revenue"}],
                },
            },
        )
        _, dash = _call(
            base,
            "/api/v1/dashboards",
            admin,
            {"name": "Bench", "tiles": [{"report_id": rep_saved["id"]}, {"report_id": opps["id"]}]},
        )
        probe = subprocess.run(
            [
                "node",
                str(PROJECT_ROOT / "bench" / "console_probe.cjs"),
                base,
                "admin@bench.test",
                PASSWORD,
                str(loads),
                str(w["account"]),
                str(dash["id"]),
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if probe.returncode != 0:
            print(probe.stderr[-3000:], file=sys.stderr)
            return 1
        pages = json.loads(probe.stdout.strip().splitlines()[-1])
        load["pages"] = loadavg()
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        services.drop_database(settings, dsn.rsplit("/", 1)[1])
    print(
        f"data: {contacts:,} contacts, {activities:,} activities ({'quick' if args.quick else 'full'} run)"
    )
    print(
        "load average (1 min) after each part, on a machine others share: "
        + ", ".join(f"{k} {v:.1f}" for k, v in load.items())
    )
    for name in ("list", "record", "dashboard"):
        xs = pages[name]
        print(
            f"{name} page to first content: p50 {pct(xs, 50):.0f} ms, p95 {pct(xs, 95):.0f} ms over {len(xs)} loads"
        )
    print(
        f"global search (typos, rep and admin): p50 {pct(search_ms, 50):.1f} ms, p99 {pct(search_ms, 99):.1f} ms;"
        f" found a contact for {found}/{len(search_ms)}"
    )
    print(
        f"baseline: contacts list q= (ILIKE, exact spelling): p50 {pct(list_ms, 50):.1f} ms, p99 {pct(list_ms, 99):.1f} ms"
    )
    print(
        f"report (activities by type x month) over HTTP, from the rollup ({rollup_read}):"
        f" admin p50 {pct(report_ms, 50):.0f} ms p95 {pct(report_ms, 95):.0f} ms;"
        f" rep p95 {pct(report_rep_ms, 95):.0f} ms"
    )
    for who in ("admin", "rep"):
        raw, roll = direct_ms[f"{who}_raw"], direct_ms[f"{who}_rollup"]
        print(
            f"  in process as the {who}: from the table p50 {pct(raw, 50):.0f} ms p95 {pct(raw, 95):.0f} ms"
            f" (baseline), from the rollup p50 {pct(roll, 50):.1f} ms p95 {pct(roll, 95):.1f} ms"
        )
    print(
        f"  same rows from both: {same_rows}; baseline full count(*) p50 {pct(scan_ms, 50):.0f} ms"
    )
    print(
        f"xlsx export of 100k list rows ({cols.count(',') + 1} columns): {xlsx_s:.1f} s,"
        f" {xlsx_bytes / 1e6:.1f} MB; baseline: the same rows as CSV {csv_s:.1f} s"
    )
    print(
        json.dumps(
            {
                "list_page_p95_ms": round(pct(pages["list"], 95), 1),
                "record_page_p95_ms": round(pct(pages["record"], 95), 1),
                "dashboard_p95_ms": round(pct(pages["dashboard"], 95), 1),
                "search_p99_ms": round(pct(search_ms, 99), 1),
                "report_p95_ms": round(pct(report_ms, 95), 1),
                "report_rep_p95_ms": round(pct(report_rep_ms, 95), 1),
                "report_raw_p95_ms": round(pct(direct_ms["admin_raw"], 95), 1),
                "report_raw_rep_p95_ms": round(pct(direct_ms["rep_raw"], 95), 1),
                "report_rollup_direct_p95_ms": round(pct(direct_ms["admin_rollup"], 95), 1),
                "report_same_rows": same_rows,
                "rollup_read": rollup_read,
                "xlsx_100k_s": round(xlsx_s, 2),
                "xlsx_baseline_csv_s": round(csv_s, 2),
                "search_found_share": round(found / max(1, len(search_ms)), 3),
                "search_baseline_p99_ms": round(pct(list_ms, 99), 1),
                "report_baseline_scan_ms": round(pct(scan_ms, 50), 1),
                "contacts": contacts,
                "activities": activities,
                "page_errors": len(pages["errors"]),
                "loadavg": load,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
