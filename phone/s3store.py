"""Attachments in S3-compatible storage (S3_URL): the same content-addressed layout as
`LocalStore`, objects `<prefix><aa>/<bb>/<sha256>[.thumb]` in one bucket.

The bucket is trusted less than the local disk, so a read checks the object's SHA-256
against its name before the bytes reach a user or a signed report; an unreachable store is
a 503 naming it, not a 500.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from kernel.errors import ApiError, Unavailable

_SHA = re.compile(r"^[0-9a-f]{64}$")
NOT_THERE = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}


class CorruptBlob(ApiError):
    """An object whose bytes do not hash to its name: the store gave bad data (502)."""

    status = 502

    def __init__(self, key: str) -> None:
        super().__init__(f"stored object {key} failed its integrity check", code="corrupt_blob")


@dataclass(frozen=True, slots=True)
class S3Location:
    endpoint: str  # host:port
    secure: bool
    access_key: str
    secret_key: str
    bucket: str
    prefix: str
    region: str | None

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        path = parts.path.strip("/")
        bucket, _, prefix = path.partition("/")
        if not parts.hostname or not parts.username or not parts.password or not bucket:
            raise ValueError("S3_URL: expected http(s)://ACCESS_KEY:SECRET@host:port/bucket")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        region = parse_qs(parts.query).get("region", [None])[0]
        return cls(
            endpoint=f"{parts.hostname}:{port}",
            secure=parts.scheme == "https",
            access_key=unquote(parts.username),
            secret_key=unquote(parts.password),
            bucket=bucket,
            prefix=(prefix.rstrip("/") + "/") if prefix else "",
            region=region,
        )


class S3Store:
    def __init__(self, location: S3Location, *, timeout_s: float = 10.0) -> None:
        self.loc = location
        # bounded timeouts and retries: a slow bucket must not hold an upload forever
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(500, 502, 503)),
            maxsize=8,
        )
        self._bucket_ok = False
        self.client = Minio(
            location.endpoint,
            access_key=location.access_key,
            secret_key=location.secret_key,
            secure=location.secure,
            region=location.region,
            http_client=http,
        )

    def key(self, sha256: str, thumb: bool) -> str:
        if not _SHA.match(sha256):
            raise ValueError("not a sha256 hex digest")
        name = f"{sha256}.thumb" if thumb else sha256
        return f"{self.loc.prefix}{sha256[:2]}/{sha256[2:4]}/{name}"

    def _unavailable(self, exc: Exception) -> Unavailable:
        return Unavailable(
            f"attachment storage at {self.loc.endpoint}/{self.loc.bucket} failed:"
            f" {type(exc).__name__}"
        )

    def ensure_bucket(self) -> None:
        """Create the bucket on first write (an external one usually exists already)."""
        if self._bucket_ok:
            return
        try:
            if not self.client.bucket_exists(self.loc.bucket):
                try:
                    self.client.make_bucket(self.loc.bucket)
                except S3Error as exc:  # a concurrent writer made it first
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
            self._bucket_ok = True
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc

    def put(self, sha256: str, data: bytes, *, thumb: bool = False) -> None:
        key = self.key(sha256, thumb)
        self.ensure_bucket()
        try:
            try:
                self.client.stat_object(self.loc.bucket, key)
                return  # content-addressed: already there is already right
            except S3Error as exc:
                if exc.code not in NOT_THERE:
                    raise
            self.client.put_object(self.loc.bucket, key, io.BytesIO(data), len(data))
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc

    def get(self, sha256: str, *, thumb: bool = False) -> bytes | None:
        key = self.key(sha256, thumb)
        try:
            resp = self.client.get_object(self.loc.bucket, key)
            try:
                data = resp.read()
            finally:
                resp.close()
                resp.release_conn()
        except S3Error as exc:
            if exc.code in NOT_THERE or exc.code == "NoSuchBucket":
                return None
            raise self._unavailable(exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc
        if not thumb and hashlib.sha256(data).hexdigest() != sha256:
            raise CorruptBlob(key)
        return data
