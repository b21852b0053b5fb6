"""Attachments: type by content, images downscaled with thumbnails and no metadata,
content-addressed files, idempotent uploads, scoped reads."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PIL import Image

from kernel.settings import Settings
from phone.media import MAX_SIDE_PX, MediaError, prepare, sniff
from tests.console.conftest import make_user
from tests.world import People


def _png(w: int, h: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (w, h), (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


def _jpeg_with_gps() -> bytes:
    img = Image.new("RGB", (640, 480), (10, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {2: (45.0, 45.0, 0.0)}  # GPS latitude
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def test_type_comes_from_the_content_not_the_name() -> None:
    assert sniff(_png(2, 2)) == "image/png"
    assert sniff(PDF) == "application/pdf"
    assert sniff(b"<html>not an image</html>") is None
    with pytest.raises(MediaError, match="by its content"):
        prepare(b"GIF89a....")
    with pytest.raises(MediaError, match="does not decode"):
        prepare(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(MediaError, match="end-of-file"):
        prepare(b"%PDF-1.4 truncated")


def test_images_are_downscaled_with_a_thumbnail_and_lose_their_metadata() -> None:
    s = prepare(_png(3000, 1500))
    assert s.content_type == "image/jpeg" and (s.width, s.height) == (MAX_SIDE_PX, 1024)
    assert s.thumb is not None and max(Image.open(io.BytesIO(s.thumb)).size) == 256
    g = prepare(_jpeg_with_gps())
    assert not Image.open(io.BytesIO(g.data)).getexif()


def test_upload_list_and_read_within_scope(app_url: str, people: People, db_dsn: str) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        acct = conn.execute(
            "INSERT INTO accounts (name, type, territory_id) VALUES ('Photo Co', 'customer', %s)"
            " RETURNING id",
            (people.t1,),
        ).fetchone()
        assert acct is not None
        wo = conn.execute(
            "INSERT INTO work_orders (account_id, title, territory_id) VALUES (%s, 'Photos', %s)"
            " RETURNING id",
            (acct[0], people.t1),
        ).fetchone()
        assert wo is not None
    rep = people.api(app_url, "rep1")
    url = f"/phone/attachments?work_order_id={wo[0]}&filename=pump.png"
    headers = {"Content-Type": "image/png", "Idempotency-Key": "k-photo-1"}
    r = rep.post(url, data=_png(2600, 2600), headers=headers)
    assert r.status_code == 201, r.text
    att = r.json()
    assert att["content_type"] == "image/jpeg" and att["width"] == MAX_SIDE_PX
    assert att["account_id"] == acct[0] and att["activity_id"]
    again = rep.post(url, data=_png(2600, 2600), headers=headers)
    assert again.status_code == 200 and again.json()["id"] == att["id"]
    # named .jpg, declared image/jpeg, but HTML inside
    bad = rep.post(
        f"/phone/attachments?work_order_id={wo[0]}&filename=x.jpg",
        data=b"<html><script>alert(1)</script></html>",
        headers={"Content-Type": "image/jpeg"},
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "body"
    big = rep.post(
        f"/phone/attachments?work_order_id={wo[0]}&filename=big.pdf",
        data=b"%PDF-" + b"0" * (16 * 1024 * 1024),
        headers={"Content-Type": "application/pdf"},
    )
    assert big.status_code == 413
    doc = rep.post(
        f"/phone/attachments?account_id={acct[0]}&filename=manual.pdf",
        data=PDF,
        headers={"Content-Type": "application/pdf"},
    )
    assert doc.status_code == 201 and doc.json()["thumb_url"] is None
    listed = rep.get(f"/phone/attachments?work_order_id={wo[0]}").json()["items"]
    assert [a["id"] for a in listed] == [att["id"]]
    f = rep.get(att["url"].removeprefix("/api/v1"))
    assert f.status_code == 200 and f.headers["Content-Type"] == "image/jpeg"
    assert f.content.startswith(b"\xff\xd8")
    t = rep.get(att["thumb_url"].removeprefix("/api/v1"))
    assert t.status_code == 200 and max(Image.open(io.BytesIO(t.content)).size) == 256
    # another territory's rep neither reads nor attaches
    other = people.api(app_url, "rep2")
    assert other.get(att["url"].removeprefix("/api/v1")).status_code == 404
    assert (
        other.post(url, data=_png(10, 10), headers={"Content-Type": "image/png"}).status_code == 404
    )
    timeline = rep.get(
        f"/activities?filter=%7B%22field%22%3A%22work_order_id%22%2C%22op%22%3A%22eq%22%2C%22value%22%3A{wo[0]}%7D"
    ).json()
    assert any("pump.png" in a["subject"] for a in timeline["items"])


def test_a_photo_taken_offline_uploads_when_back_online(
    phone_app: str,
    phone_settings: Settings,
    tmp_path: Path,
    run_phone: Callable[..., dict[str, Any]],
) -> None:
    dsn = phone_settings.dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO territories (name) VALUES (%s) RETURNING id",
            (f"photo-{uuid.uuid4().hex[:6]}",),
        ).fetchone()
        assert row is not None
        rep = make_user(dsn, "rep", territory_id=int(row[0]))
        acct = conn.execute(
            "INSERT INTO accounts (name, type, territory_id, location) VALUES ('Offline Photo Co',"
            " 'customer', %s, ST_MakePoint(4.85, 45.76)::geography) RETURNING id",
            (row[0],),
        ).fetchone()
        assert acct is not None
        wo = conn.execute(
            "INSERT INTO work_orders (account_id, title, territory_id, assignee_id, status)"
            " VALUES (%s, 'Leak', %s, %s, 'assigned') RETURNING id",
            (acct[0], row[0], rep["id"]),
        ).fetchone()
        assert wo is not None
    photo = tmp_path / "leak.png"
    photo.write_bytes(_png(3000, 2000))
    r = run_phone("photo", phone_app, {"user": rep, "photo": str(photo)})
    assert "1 waiting" in r["waiting"]
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT id, width, height, content_type, has_thumb FROM phone_attachments"
            " WHERE work_order_id = %s",
            (wo[0],),
        ).fetchall()
    assert len(rows) == 1  # sent once
    assert rows[0][1:] == (MAX_SIDE_PX, 1365, "image/jpeg", True)
    assert r["shown"] == str(rows[0][0])
    assert r["errors"] == []
