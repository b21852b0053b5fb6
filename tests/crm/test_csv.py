"""CSV import (good and bad rows mixed, upsert, revert) and export (access-filtered)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

import psycopg

from kernel.jobs import enqueue_sync
from tests.crm.conftest import World
from tests.eventually import eventually
from tests.world import Api


def _wait(api: Api, path: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(path).json()
        return job if job["status"] in ("done", "failed") else None

    return eventually(finished, what=f"job {path} to finish")


def _import(api: Api, entity: str, key: str, text: str) -> dict[str, Any]:
    r = api.session.post(
        f"{api.base}/imports",
        params={"entity": entity, "key": key},
        data=text.encode(),
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert r.status_code == 202, r.text
    return _wait(api, f"/imports/{r.json()['id']}")


def test_import_keeps_good_rows_reports_bad_lines_and_reverts(world: World) -> None:
    api = world.api("rep1")
    tag = uuid.uuid4().hex[:6]
    existing = api.post(
        "/contacts", {"first_name": "Old", "last_name": "Name", "email": f"keep-{tag}@x.test"}
    ).json()
    text = (
        "first_name,last_name,email,phone,custom.segment,comm_prefs\n"
        f"Ann,Good,ann-{tag}@x.test,+49 30 1111,smb,\n"  # line 2: new
        f"Bob,Bad,bob-{tag}@x.test,,smb,{{not json}}\n"  # line 3: bad JSON
        f"New,Name,keep-{tag}@x.test,,ent,\n"  # line 4: updates the existing contact
        f'"Multi\nLine",Quoted,multi-{tag}@x.test,,mid,\n'  # lines 5-6: a quoted newline
        f",,nobody-{tag}@x.test,,,\n"  # line 7: no name at all
        f'Eve,Good,eve-{tag}@x.test,,,"{{""email"": true}}"\n'  # line 8: new
    )
    job = _import(api, "contacts", "email", text)
    assert job["status"] == "done", job
    assert (job["inserted_rows"], job["updated_rows"], job["failed_rows"]) == (3, 1, 2)
    errors = api.get(f"/imports/{job['id']}/errors").json()["items"]
    assert [(e["line_no"], e["field"]) for e in errors] == [(3, "comm_prefs"), (7, "last_name")]
    found = api.get("/contacts", params={"q": tag, "total": "true", "limit": 50}).json()
    by_email = {c["email"]: c for c in found["items"]}
    assert found["total"] == 4
    assert by_email[f"ann-{tag}@x.test"]["phone_normalized"] == "+49301111"
    assert by_email[f"ann-{tag}@x.test"]["custom"] == {"segment": "smb"}
    assert by_email[f"eve-{tag}@x.test"]["comm_prefs"] == {"email": True}
    assert by_email[f"keep-{tag}@x.test"]["first_name"] == "New"
    assert by_email[f"keep-{tag}@x.test"]["territory_id"] == world.t1

    r = api.post(f"/imports/{job['id']}/revert")
    assert r.status_code == 200 and r.json()["status"] == "reverted"
    after = api.get("/contacts", params={"q": tag, "total": "true"}).json()
    assert after["total"] == 1
    restored = api.get(f"/contacts/{existing['id']}").json()
    assert (restored["first_name"], restored["last_name"]) == ("Old", "Name")
    assert api.post(f"/imports/{job['id']}/revert").status_code == 409


def test_import_with_an_unknown_column_is_refused_naming_it(world: World) -> None:
    api = world.api("rep1")
    r = api.session.post(
        f"{api.base}/imports",
        params={"entity": "accounts", "key": "name"},
        data=b"name,colour\nA,red\n",
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "colour"


def test_import_cannot_update_records_the_user_may_not_see(world: World) -> None:
    theirs = world.api("rep2").post("/accounts", {"name": f"Hidden {uuid.uuid4().hex[:6]}"}).json()
    job = _import(world.api("rep1"), "accounts", "id", f"id,name\n{theirs['id']},Hijacked\n")
    assert job["failed_rows"] == 1
    assert world.api("rep2").get(f"/accounts/{theirs['id']}").json()["name"] == theirs["name"]


def test_export_applies_the_filter_and_record_level_access(world: World) -> None:
    tag = uuid.uuid4().hex[:6]
    rep1, rep2 = world.api("rep1"), world.api("rep2")
    for i in range(3):
        rep1.post("/accounts", {"name": f"Exp{tag} mine {i}", "custom": {"n": i}})
    rep2.post("/accounts", {"name": f"Exp{tag} theirs"})
    flt = {"field": "name", "op": "contains", "value": f"Exp{tag}"}
    r = rep1.post("/exports", {"entity": "accounts", "filter": flt})
    assert r.status_code == 202, r.text
    job = _wait(rep1, f"/exports/{r.json()['id']}")
    assert job["status"] == "done" and job["total_rows"] == 3 and job["processed_rows"] == 3
    body = rep1.get(f"/exports/{job['id']}/download")
    assert body.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body.text)))
    assert sorted(row["name"] for row in rows) == [f"Exp{tag} mine {i}" for i in range(3)]
    assert json.loads(rows[0]["custom"]) in ({"n": 0}, {"n": 1}, {"n": 2})
    # another user cannot fetch this job
    assert rep2.get(f"/exports/{job['id']}/download").status_code == 404
    # the admin's export of the same filter sees all four
    r = world.api("admin").post("/exports", {"entity": "accounts", "filter": flt})
    assert _wait(world.api("admin"), f"/exports/{r.json()['id']}")["total_rows"] == 4


def test_export_neutralises_cells_a_spreadsheet_would_run_as_formulas(world: World) -> None:
    api = world.api("rep1")
    tag = uuid.uuid4().hex[:6]
    names = [f'=HYPERLINK("x"){tag}', f"+1{tag}", f"-2{tag}", f"@SUM{tag}", f"\tTab{tag}"]
    names.append(f"\rCR{tag}")
    for name in names:
        r = api.post("/accounts", {"name": name, "health_score": 5})
        assert r.status_code == 201, r.text
    api.post("/accounts", {"name": f"Plain{tag}"})
    flt = {"field": "name", "op": "contains", "value": tag}
    r = api.post("/exports", {"entity": "accounts", "filter": flt})
    assert r.status_code == 202, r.text
    job = _wait(api, f"/exports/{r.json()['id']}")
    assert job["status"] == "done", job
    rows = list(csv.DictReader(io.StringIO(api.get(f"/exports/{job['id']}/download").text)))
    exported = sorted(row["name"] for row in rows)
    assert exported == sorted(["'" + n for n in names] + [f"Plain{tag}"])
    plain = next(row for row in rows if row["name"] == f"Plain{tag}")
    assert plain["health_score"] == ""
    assert {row["health_score"] for row in rows if row is not plain} == {"5"}


def test_control_characters_and_nul_in_an_import_fail_only_their_lines(world: World) -> None:
    api = world.api("rep1")
    tag = uuid.uuid4().hex[:6]
    text = (
        "first_name,last_name,email\n"
        f"Ann,Good,ann-{tag}@x.test\n"  # line 2
        f"Nul,Cell\x00,nul-{tag}@x.test\n"  # line 3: a NUL byte
        f"Bell,\x07Ring,bell-{tag}@x.test\n"  # line 4: BEL
        f"Esc,Ok,esc-{tag}@x.test,\x1b\n"  # line 5: an extra cell with ESC
        f"Eve,Good,eve-{tag}@x.test\n"  # line 6
    )
    job = _import(api, "contacts", "email", text)
    assert job["status"] == "done", job
    assert (job["inserted_rows"], job["failed_rows"]) == (2, 3)
    errors = api.get(f"/imports/{job['id']}/errors").json()["items"]
    assert [(e["line_no"], e["field"]) for e in errors][:2] == [(3, "last_name"), (4, "last_name")]
    assert errors[2]["line_no"] == 5
    assert "U+0000" in errors[0]["message"] and "U+0007" in errors[1]["message"]
    assert errors[0]["raw"]["last_name"] == "Cell\\x00"  # shown, not lost
    found = api.get("/contacts", params={"q": tag, "total": "true"}).json()
    assert sorted(c["first_name"] for c in found["items"]) == ["Ann", "Eve"]


def test_import_runs_as_a_job_and_running_it_again_repeats_nothing(
    world: World, db: psycopg.Connection[Any]
) -> None:
    api = world.api("rep1")
    tag = uuid.uuid4().hex[:6]
    text = (
        "first_name,last_name,email\n"
        f"Ann,One,ann-{tag}@x.test\n"
        f"Bob,Two,bob-{tag}@x.test\n"
        f",,bad-{tag}@x.test\n"
    )
    job = _import(api, "contacts", "email", text)
    assert (job["status"], job["inserted_rows"], job["failed_rows"]) == ("done", 2, 1)
    row = db.execute(
        "SELECT status, attempts FROM jobs WHERE task = 'crm.import' AND args->>'import_id' = %s",
        (str(job["id"]),),
    ).fetchone()
    assert row == ("done", 1)  # the API enqueued it, the job worker ran it

    # as if the worker had died before recording the end: the job system runs it again
    db.execute("UPDATE import_jobs SET status = 'running' WHERE id = %s", (job["id"],))
    enqueue_sync(db, "crm.import", {"import_id": job["id"]})
    db.commit()
    again = _wait(api, f"/imports/{job['id']}")
    assert (again["status"], again["inserted_rows"], again["updated_rows"]) == ("done", 2, 0)
    assert again["failed_rows"] == 1
    found = api.get("/contacts", params={"q": tag, "total": "true"}).json()
    assert found["total"] == 2
