"""The AR page served by the real app from the real database, loaded in a real headless
Chromium: the model renders (a non-blank canvas with the scene's colours)."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kernel.settings import PROJECT_ROOT, Settings
from tests.appserver import serve_app
from tests.ar_viewer.gltf_check import check_glb, read_png
from tests.ar_viewer.people import user_token

pytestmark = pytest.mark.integration

# Two clusters around Lausanne: healthy (green) and critical (red) accounts.
LON0, LAT0 = 6.60, 46.50


def _seed(db: psycopg.Connection, name: str) -> int:
    with db.cursor() as cur:
        cur.execute(
            "INSERT INTO territories (name, geom) VALUES (%s, ST_GeogFromText(%s)) RETURNING id",
            (
                name,
                f"MULTIPOLYGON((({LON0} {LAT0}, {LON0 + 0.2} {LAT0}, {LON0 + 0.2} {LAT0 + 0.14}, {LON0} {LAT0 + 0.14}, {LON0} {LAT0})))",
            ),
        )
        tid = cur.fetchone()[0]  # type: ignore[index]
        rows: list[tuple[str, str | None, int, int, int]] = []
        for i in range(40):
            healthy = i % 2 == 0
            lon = LON0 + (0.05 if healthy else 0.15) + 0.004 * (i % 5)
            lat = LAT0 + 0.07 + 0.004 * (i // 10)
            rows.append(
                (
                    f"{name} account {i}",
                    f"POINT({lon} {lat})",
                    200_000 + 10_000 * i,
                    90 if healthy else 10,
                    tid,
                )
            )
        rows.append((f"{name} nowhere", None, 5_000, 50, tid))
        cur.executemany(
            "INSERT INTO accounts (name, location, annual_revenue, health_score, territory_id) "
            "VALUES (%s, ST_GeogFromText(%s), %s, %s, %s)",
            rows,
        )
        cur.execute("SELECT id FROM accounts WHERE territory_id = %s ORDER BY id LIMIT 1", (tid,))
        first = cur.fetchone()[0]  # type: ignore[index]
        cur.execute(
            "INSERT INTO opportunities (name, account_id, pipeline_id, stage_id, amount, probability, status) "
            "SELECT 'Deal', %s, p.id, s.id, 12345, 10, 'open' FROM pipelines p JOIN pipeline_stages s "
            "ON s.pipeline_id = p.id WHERE p.is_default ORDER BY s.position LIMIT 1",
            (first,),
        )
    db.commit()
    return int(tid)


@pytest.fixture
def served(test_settings: Settings) -> Iterator[str]:
    """The real aiohttp app on a free loopback port, in a thread with its own loop."""
    with serve_app(test_settings, ("ar_viewer.routes",)) as url:
        yield url


@pytest.fixture
def admin_token(test_settings: Settings) -> str:
    return user_token(test_settings.dsn, "admin")


def _get(
    url: str, headers: dict[str, str] | None = None, token: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_scene_files_come_from_the_crm_tables_and_are_cached_by_content(
    db: psycopg.Connection, served: str, admin_token: str
) -> None:
    name = f"AR {uuid.uuid4().hex[:8]}"
    _seed(db, name)
    base = f"{served}/ar/territories/{urllib.parse.quote(name)}"
    status, _, body = _get(f"{base}/scene.json", token=admin_token)
    assert status == 200
    info = json.loads(body)
    assert info["stats"]["accounts_shown"] == 40
    assert [i["subject"] for i in info["issues"] if i["kind"] == "left_out"] == [
        next(i["subject"] for i in info["issues"])
    ] and "location" in info["issues"][0]["field"]
    status, headers, glb = _get(f"{base}/scene.glb", token=admin_token)
    assert status == 200 and headers["Content-Type"] == "model/gltf-binary"
    check_glb(glb)
    etag = headers["ETag"]
    assert _get(f"{base}/scene.glb", {"If-None-Match": etag}, token=admin_token)[0] == 304
    status, headers, usdz = _get(f"{base}/scene.usdz", token=admin_token)
    assert status == 200 and usdz[:2] == b"PK"
    status, headers, png = _get(f"{base}/scene.png", token=admin_token)
    assert status == 200 and png[:4] == b"\x89PNG"
    # the data changes -> a new content hash, a new ETag, a new scene
    with db.cursor() as cur:
        cur.execute("UPDATE accounts SET health_score = 55 WHERE name = %s", (f"{name} account 1",))
    db.commit()
    status, headers2, _ = _get(f"{base}/scene.glb", {"If-None-Match": etag}, token=admin_token)
    assert status == 200 and headers2["ETag"] != etag
    # pipeline metric: heights from open opportunities
    status, _, body = _get(f"{base}/scene.json?metric=pipeline", token=admin_token)
    assert status == 200 and "open pipeline" in json.loads(body)["scale_note"]
    assert _get(f"{base}/scene.json?metric=nonsense", token=admin_token)[0] == 422
    assert _get(f"{served}/ar/territories/no-such-territory", token=admin_token)[0] == 404
    status, _, body = _get(f"{served}/ar/territories", token=admin_token)
    assert name in json.loads(body)["territories"]


def test_page_has_model_viewer_with_ar_legend_hotspots_and_qr(
    db: psycopg.Connection, served: str, admin_token: str
) -> None:
    name = f"AR {uuid.uuid4().hex[:8]}"
    _seed(db, name)
    status, _, body = _get(f"{served}/ar/territories/{urllib.parse.quote(name)}", token=admin_token)
    html = body.decode()
    assert status == 200
    assert 'ar-modes="webxr scene-viewer quick-look"' in html and " ar " in html
    assert "ios-src=" in html and "scene.usdz" in html
    assert (
        'src="/ar/static/model-viewer.min.js"' in html
        and "unpkg" not in html
        and "cdn" not in html.lower()
    )
    assert html.count('slot="hotspot-') == 25 and "/api/v1/accounts/" in html
    assert "health 85-100" in html and "<svg" in html and "QR code" in html
    status, _headers, js = _get(f"{served}/ar/static/model-viewer.min.js")
    assert status == 200 and len(js) > 100_000
    assert _get(f"{served}/ar/static/..%2Fpackage.json")[0] == 404


@pytest.mark.slow
def test_headless_chromium_renders_the_model(
    db: psycopg.Connection, served: str, tmp_path: Path, admin_token: str
) -> None:
    assert shutil.which("node") and Path("/usr/bin/chromium").exists()
    name = f"AR {uuid.uuid4().hex[:8]}"
    _seed(db, name)
    # a browser has no bearer header: it opens the scene the way a customer does, by a link
    url = share_url(served, admin_token, {"territory": name})
    shot = tmp_path / "page.png"
    profile = tmp_path / "profile"
    proc = subprocess.run(
        [
            "node",
            str(PROJECT_ROOT / "tests/ar_viewer/screenshot.cjs"),
            url,
            str(shot),
            str(profile),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["state"] == "yes", result
    assert result["failed"] == [] and result["csp"] == []
    img = read_png(str(shot)).astype(int)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    background = (r > 245) & (g > 245) & (b > 245)
    assert (~background).mean() > 0.05, "the canvas is blank"
    green = (g > r + 30) & (g > b + 20)
    red = (r > g + 60) & (r > b + 40)
    assert green.sum() > 300, "no healthy (green) columns on screen"
    assert red.sum() > 300, "no critical (red) columns on screen"
    shutil.copy(shot, Path("/tmp") / "ar_viewer_chromium.png")


def share_url(served: str, token: str, target: dict[str, str]) -> str:
    """A share link made through the API (what a manager sends a customer)."""
    req = urllib.request.Request(
        f"{served}/api/v1/ar/shares",
        data=json.dumps({**target, "expires_in_s": 3600}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 201
        return str(json.loads(r.read())["url"])


def _seed_device(db: psycopg.Connection, device_id: str) -> None:
    with db.cursor() as cur:
        cur.execute(
            "INSERT INTO device (device_id, tenant, kind, name) VALUES (%s, 'acme', 'equipment', 'Pump P-7')",
            (device_id,),
        )
        cur.executemany(
            "INSERT INTO telemetry_latest (device_id, metric, time, value) VALUES (%s, %s, now(), %s)",
            [
                (device_id, "vibration_mm_s", 12.5),
                (device_id, "temperature_c", 61.0),
                (device_id, "pressure_bar", float("nan")),
            ],
        )
    db.commit()


def test_asset_view_places_the_devices_latest_readings_on_a_pump(
    db: psycopg.Connection, served: str, tmp_path: Path, admin_token: str
) -> None:
    device_id = f"pump-{uuid.uuid4().hex[:8]}"
    _seed_device(db, device_id)
    base = f"{served}/ar/assets/{device_id}"
    status, _, body = _get(f"{base}/scene.json", token=admin_token)
    assert status == 200
    info = json.loads(body)
    by_text = {lbl["text"].split()[0]: lbl["detail"] for lbl in info["labels"]}
    assert "critical" in by_text["vibration"] and "no alert" in by_text["temperature"]
    assert "no data" in by_text["pressure"]
    assert [(i["subject"], i["field"]) for i in info["issues"]] == [
        (f"sensor {device_id}/pressure_bar", "value")
    ]
    status, _, glb = _get(f"{base}/scene.glb", token=admin_token)
    assert status == 200
    check_glb(glb)
    assert _get(f"{served}/ar/assets/no-such-device", token=admin_token)[0] == 404
    shot = tmp_path / "asset.png"
    link = share_url(served, admin_token, {"device_id": device_id})
    proc = subprocess.run(
        ["node", str(PROJECT_ROOT / "tests/ar_viewer/screenshot.cjs"), link, str(shot), str(tmp_path / "profile")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["state"] == "yes" and result["csp"] == []
    # on a phone the scene is as wide as the screen (it was 65 px beside the legend)
    assert result["phone"] == {"width": 390, "height": result["phone"]["height"], "overflow": 0}
    assert result["phone"]["height"] >= 400, result["phone"]
    img = read_png(str(shot)).astype(int)
    background = (img > 245).all(axis=2)
    assert (~background).mean() > 0.05, "the canvas is blank"
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    # the critical vibration sensor (dark red) and the healthy temperature sensor (blue)
    assert ((r > g + 80) & (r > b + 50)).sum() > 100, "the critical sensor is not on screen"
    assert ((b > r + 60) & (b > g + 20)).sum() > 100, "the healthy sensor is not on screen"
    shutil.copy(shot, Path("/tmp") / "ar_viewer_chromium_asset.png")
