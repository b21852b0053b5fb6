"""The CalDAV adapter: the only module that talks to a CalDAV server.

Discovery and the sync-collection REPORT (RFC 6578) go through the `caldav` library;
object writes are plain conditional HTTP requests (`If-None-Match: *` to create,
`If-Match: <etag>` to change or delete) so that a concurrent change on the server is a
412, never a silent overwrite, and so that several can run at once on a small pool of
threads. Every call is blocking: the sync engine runs them off the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import requests
from caldav.davclient import DAVClient
from caldav.lib import error as caldav_error
from caldav.lib.url import URL

from calendars.server import CALENDAR_NAME

log = logging.getLogger(__name__)

MULTIGET_BATCH = 200
WRITE_THREADS = 4


class CalDavError(RuntimeError):
    """The server could not be reached or answered unexpectedly (the job retries)."""


class PreconditionFailed(CalDavError):
    """The object changed (or appeared) on the server since we read it: 412."""


@dataclass(frozen=True, slots=True)
class Changes:
    token: str | None
    changed: list[tuple[str, str | None]]  # (href path, etag)
    deleted: list[str]  # href paths
    full: bool  # a complete listing (first sync or an expired token): absent means deleted


@dataclass(frozen=True, slots=True)
class Written:
    href: str
    etag: str | None
    status: int  # 201/204 written, 412 precondition failed, 404 gone


def _path(url: Any) -> str:
    return unquote(urlsplit(str(url)).path)


class CalDav:
    def __init__(self, server_url: str, username: str, password: str, timeout_s: float = 120.0):
        self.server_url = server_url
        parts = urlsplit(server_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._auth = (username, password)
        self._timeout_s = timeout_s
        # Basic auth sent up front: an unauthenticated first request would cost a 401 round
        # trip, and Radicale delays every 401 by up to a second (its brute-force guard)
        self._client = DAVClient(
            url=server_url,
            username=username,
            password=password,
            timeout=int(timeout_s),
            auth_type="basic",
        )
        self._local = threading.local()

    # ----------------------------------------------------------------- plumbing

    def _session(self) -> requests.Session:
        s: requests.Session | None = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.auth = self._auth
            self._local.session = s
        return s

    def url(self, href: str) -> str:
        return self._origin + quote(href, safe="/@:+,;=~!$&'()*")

    def close(self) -> None:
        self._client.close()

    # ----------------------------------------------------------------- calendar

    def ensure_calendar(self, calendar_url: str | None) -> str:
        """The path of the user's calendar: the given one, else the one named
        `fieldmesh` in the principal's home (made on first use)."""
        try:
            if calendar_url:
                return _path(calendar_url)
            principal = self._client.principal()  # type: ignore[no-untyped-call]  # caldav leaves it unannotated
            for cal in principal.calendars():
                if _path(cal.url).rstrip("/").endswith("/" + CALENDAR_NAME):
                    return _path(cal.url)
            made = principal.make_calendar(name=CALENDAR_NAME, cal_id=CALENDAR_NAME)
            return _path(made.url)
        except (caldav_error.DAVError, requests.RequestException, OSError) as exc:
            raise CalDavError(f"CalDAV calendar at {self.server_url}: {exc}") from exc

    def _calendar(self, calendar_path: str) -> Any:
        return self._client.calendar(url=self.url(calendar_path))  # type: ignore[no-untyped-call]  # caldav leaves it unannotated

    # ----------------------------------------------------------------- reading

    def changes(self, calendar_path: str, token: str | None) -> Changes:
        """What changed since `token` (a complete listing without one, or when the
        server no longer knows it)."""
        cal = self._calendar(calendar_path)
        full = token is None
        try:
            try:
                res = cal.get_objects_by_sync_token(
                    token, load_objects=False, disable_fallback=token is not None
                )
            except (caldav_error.DAVError, caldav_error.ReportError) as exc:
                if token is None:
                    raise
                log.info("sync token of %s refused (%s): full listing", calendar_path, exc)
                full = True
                res = cal.get_objects_by_sync_token(None, load_objects=False)
            deleted = {_path(u) for u in getattr(res, "deleted_urls", ()) or ()}
            changed: list[tuple[str, str | None]] = []
            for obj in res:
                p = _path(obj.url)
                if p in deleted or p.rstrip("/") == calendar_path.rstrip("/"):
                    continue
                props = getattr(obj, "props", None) or {}
                etag = props.get("{DAV:}getetag")
                changed.append((p, str(etag) if etag else None))
            return Changes(res.sync_token, changed, sorted(deleted), full)
        except (caldav_error.DAVError, requests.RequestException, OSError) as exc:
            raise CalDavError(f"sync-collection REPORT on {calendar_path}: {exc}") from exc

    def fetch(self, calendar_path: str, hrefs: Sequence[str]) -> list[tuple[str, str | None, str]]:
        """(href, etag, iCalendar text) of the objects that still exist, by multiget."""
        cal = self._calendar(calendar_path)
        out: list[tuple[str, str | None, str]] = []
        for i in range(0, len(hrefs), MULTIGET_BATCH):
            batch = [URL.objectify(self.url(h)) for h in hrefs[i : i + MULTIGET_BATCH]]
            try:
                results = cal._multiget(batch, raise_notfound=False)
            except (caldav_error.DAVError, requests.RequestException, OSError) as exc:
                raise CalDavError(f"calendar-multiget on {calendar_path}: {exc}") from exc
            for url, data, tags in results:
                if not data:
                    continue
                etag = (tags or {}).get("{DAV:}getetag")
                out.append((_path(url), str(etag) if etag else None, str(data)))
        return out

    def get(self, href: str) -> tuple[str | None, str] | None:
        try:
            r = self._session().get(self.url(href), timeout=self._timeout_s)
        except requests.RequestException as exc:
            raise CalDavError(f"GET {href}: {exc}") from exc
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise CalDavError(f"GET {href}: HTTP {r.status_code}")
        return r.headers.get("ETag"), r.text

    # ----------------------------------------------------------------- writing

    def _put(self, href: str, ics: str, etag: str | None) -> Written:
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        if etag:
            headers["If-Match"] = etag
        else:
            headers["If-None-Match"] = "*"
        try:
            r = self._session().put(
                self.url(href), data=ics.encode("utf-8"), headers=headers, timeout=self._timeout_s
            )
        except requests.RequestException as exc:
            raise CalDavError(f"PUT {href}: {exc}") from exc
        if r.status_code in (200, 201, 204):
            return Written(href, r.headers.get("ETag"), 201)
        if r.status_code == 412:
            return Written(href, None, 412)
        raise CalDavError(f"PUT {href}: HTTP {r.status_code} {r.text[:200]}")

    def _delete(self, href: str, etag: str | None) -> Written:
        headers = {"If-Match": etag} if etag else {}
        try:
            r = self._session().delete(self.url(href), headers=headers, timeout=self._timeout_s)
        except requests.RequestException as exc:
            raise CalDavError(f"DELETE {href}: {exc}") from exc
        if r.status_code in (200, 204):
            return Written(href, None, 204)
        if r.status_code in (404, 410):
            return Written(href, None, 404)
        if r.status_code == 412:
            return Written(href, None, 412)
        raise CalDavError(f"DELETE {href}: HTTP {r.status_code} {r.text[:200]}")

    def put_many(self, items: Iterable[tuple[str, str, str | None]]) -> list[Written]:
        """PUT each (href, ics, etag or None) on a few threads; results in input order."""
        batch = list(items)
        if len(batch) <= 2:
            return [self._put(*it) for it in batch]
        with ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="caldav-put") as pool:
            return list(pool.map(lambda it: self._put(*it), batch))

    def delete_many(self, items: Iterable[tuple[str, str | None]]) -> list[Written]:
        batch = list(items)
        if len(batch) <= 2:
            return [self._delete(*it) for it in batch]
        with ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="caldav-delete") as pool:
            return list(pool.map(lambda it: self._delete(*it), batch))
