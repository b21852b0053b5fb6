"""Attachments in S3-compatible storage (S3_URL) against a real S3 HTTP server (s3rver):
the same API, the bytes in the bucket and not on disk, a tampered object refused, and an
unreachable store answered with a 503 naming it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from minio import Minio
from PIL import Image

from fieldmesh.svc_s3 import ACCESS_KEY, SECRET_KEY, LocalS3Server
from kernel.settings import Settings, SettingsError, load_settings
from phone.s3store import S3Location
from tests.appserver import serve_app
from tests.ports import free_port
from tests.world import People


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3Server]:
    root = tmp_path_factory.mktemp("s3")
    with LocalS3Server(free_port(), root / "data", root / "s3rver.log") as server:
        yield server


def _png(green: int = 160) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (900, 600), (30, green, 90)).save(out, "PNG")
    return out.getvalue()


def test_s3_url_is_checked_without_echoing_its_secret() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({"S3_URL": "http://host:9000/bucket"})  # no keys
    assert "S3_URL" in str(err.value)
    with pytest.raises(SettingsError) as err:
        load_settings({"S3_URL": "ftp://AK:topsecret@host/bucket"})
    assert "topsecret" not in str(err.value)
    loc = S3Location.parse("https://AK:s%2Fk@s3.example.com/media/fm/att?region=eu-west-1")
    assert (loc.endpoint, loc.secure, loc.secret_key) == ("s3.example.com:443", True, "s/k")
    assert (loc.bucket, loc.prefix, loc.region) == ("media", "fm/att/", "eu-west-1")


def test_attachments_live_in_the_bucket_and_are_checked_on_read(
    s3: LocalS3Server, test_settings: Settings, people: People, db_dsn: str, tmp_path: Path
) -> None:
    settings = test_settings.with_overrides(
        s3_url=s3.url("fm-media", "tenant-a"), state_dir=tmp_path / "state"
    )
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        acct = conn.execute(
            "INSERT INTO accounts (name, type, territory_id) VALUES ('S3 Co', 'customer', %s)"
            " RETURNING id",
            (people.t1,),
        ).fetchone()
        assert acct is not None
    client = Minio(f"127.0.0.1:{s3.port}", ACCESS_KEY, SECRET_KEY, secure=False)
    with serve_app(settings, job_modules=()) as url:
        rep = people.api(url, "rep1")
        r = rep.post(
            f"/phone/attachments?account_id={acct[0]}&filename=site.png",
            data=_png(),
            headers={"Content-Type": "image/png", "Idempotency-Key": "s3-1"},
        )
        assert r.status_code == 201, r.text
        att = r.json()
        keys = {o.object_name for o in client.list_objects("fm-media", recursive=True)}
        sha = att["sha256"]
        assert f"tenant-a/{sha[:2]}/{sha[2:4]}/{sha}" in keys
        assert f"tenant-a/{sha[:2]}/{sha[2:4]}/{sha}.thumb" in keys
        assert not (tmp_path / "state" / "attachments").exists()  # nothing on local disk
        f = rep.get(att["url"].removeprefix("/api/v1"))
        assert f.status_code == 200 and f.content.startswith(b"\xff\xd8")
        assert max(Image.open(io.BytesIO(f.content)).size) == 900
        # someone with bucket access swaps the bytes: the read refuses them
        bad = b"\xff\xd8 not the photo"
        client.put_object(
            "fm-media", f"tenant-a/{sha[:2]}/{sha[2:4]}/{sha}", io.BytesIO(bad), len(bad)
        )
        swapped = rep.get(att["url"].removeprefix("/api/v1"))
        assert swapped.status_code == 502
        assert swapped.json()["error"]["code"] == "corrupt_blob"
        s3.stop()
        try:
            down = rep.post(
                f"/phone/attachments?account_id={acct[0]}&filename=later.png",
                data=_png(green=20),  # other bytes: not already stored
                headers={"Content-Type": "image/png", "Idempotency-Key": "s3-2"},
            )
            assert down.status_code == 503, down.text
            assert "attachment storage" in down.json()["error"]["message"]
        finally:
            s3.start()
