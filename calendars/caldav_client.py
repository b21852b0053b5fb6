"""The CalDAV adapter: the only module that talks to a CalDAV server.

Discovery (the principal, its calendars, MKCALENDAR) goes through the `caldav` library.
The sync-collection REPORT (RFC 6578) and calendar-multiget are sent directly, a small
XML body each, so that deletions (404 entries) and every object's ETag come back in one
answer whatever the library version. Object writes are plain conditional HTTP requests
(`If-None-Match: *` to create, `If-Match: <etag>` to change or delete) so that a
concurrent change on the server is a 412, never a silent overwrite, and several run at
once on a small pool of threads. Every call is blocking: the sync engine runs them off
the event loop. Server answers are parsed by the standard library's expat-based XML
parser (entity expansion limited) and capped in size.
"""

from __future__ import annotations

import logging
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from xml.sax.saxutils import escape

import requests
from caldav.davclient import DAVClient
from caldav.lib import error as caldav_error

from calendars.server import CALENDAR_NAME

log = logging.getLogger(__name__)
_SAFE = "/@:+,;=~!$&'()*"

MULTIGET_BATCH = 200
WRITE_THREADS = 4
# a complete listing or a whole-calendar upload of 10,000 objects takes Radicale minutes
# on a busy machine: those two get a timeout of their own
LONG_TIMEOUT_S = 1800.0
MAX_REPORT_BYTES = 200 * 1024 * 1024
DAV = "{DAV:}"
CAL = "{urn:ietf:params:xml:ns:caldav}"


class CalDavError(RuntimeError):
    """The server could not be reached or answered unexpectedly (the job retries)."""


class _TokenRefused(Exception):
    """The server no longer knows the sync token (RFC 6578 DAV:valid-sync-token)."""


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


def _sync_body(token: str | None) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<d:sync-collection xmlns:d="DAV:">'
        f"<d:sync-token>{escape(token or '')}</d:sync-token>"
        "<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"
    )


def _multiget_body(hrefs: Sequence[str]) -> str:
    refs = "".join(f"<d:href>{escape(quote(h, safe=_SAFE))}</d:href>" for h in hrefs)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
        f"<d:prop><d:getetag/><c:calendar-data/></d:prop>{refs}</c:calendar-multiget>"
    )


class CalDav:
    def __init__(
        self,
        server_url: str,
        username: str,
        password: str,
        timeout_s: float = 120.0,
        *,
        bulk_create: bool = False,
        change_stamp: Callable[[], str] | None = None,
    ):
        self.server_url = server_url
        # the server takes a whole calendar in one PUT on the collection (Radicale, the
        # embedded server): the first upload of a large calendar is one request, not one
        # UID check of the whole collection per object (O(n^2) in Radicale)
        self.bulk_create = bulk_create
        # the embedded server's change marker of this account (calendars.server)
        self.change_stamp = change_stamp
        parts = urlsplit(server_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._auth = (username, password)
        self._timeout_s = timeout_s
        # Basic auth sent up front: an unauthenticated first request would cost a 401 round
        # trip, and Radicale delays every 401 by up to a second (its brute-force guard)
        self._client = DAVClient(
            url=server_url,
            timeout=int(timeout_s),
            auth=requests.auth.HTTPBasicAuth(username, password),
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
        return self._origin + quote(href, safe=_SAFE)

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

    # ----------------------------------------------------------------- reading

    def _report(self, calendar_path: str, body: str, timeout_s: float | None = None) -> ET.Element:
        try:
            r = self._session().request(
                "REPORT",
                self.url(calendar_path),
                data=body.encode("utf-8"),
                headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
                timeout=timeout_s or self._timeout_s,
            )
        except requests.RequestException as exc:
            raise CalDavError(f"REPORT on {calendar_path}: {exc}") from exc
        if r.status_code in (403, 409, 412) and "valid-sync-token" in r.text:
            raise _TokenRefused(r.text[:200])
        if r.status_code != 207:
            raise CalDavError(f"REPORT on {calendar_path}: HTTP {r.status_code} {r.text[:200]}")
        if len(r.content) > MAX_REPORT_BYTES:
            raise CalDavError(f"REPORT on {calendar_path}: answer over {MAX_REPORT_BYTES} bytes")
        try:
            return ET.fromstring(r.content)
        except ET.ParseError as exc:
            raise CalDavError(f"REPORT on {calendar_path}: not XML: {exc}") from exc

    def changes(self, calendar_path: str, token: str | None) -> Changes:
        """What changed since `token` (RFC 6578 sync-collection); a complete listing
        without one, or when the server no longer knows it."""
        full = token is None
        try:
            root = self._report(calendar_path, _sync_body(token), LONG_TIMEOUT_S if full else None)
        except _TokenRefused as exc:
            log.info("sync token of %s refused (%s): full listing", calendar_path, exc)
            full = True
            root = self._report(calendar_path, _sync_body(None), LONG_TIMEOUT_S)
        changed: list[tuple[str, str | None]] = []
        deleted: list[str] = []
        own = calendar_path.rstrip("/")
        for resp in root.findall(f"{DAV}response"):
            href = _path(resp.findtext(f"{DAV}href", ""))
            if not href or href.rstrip("/") == own:
                continue
            status = resp.findtext(f"{DAV}status", "")
            if " 404" in status:
                deleted.append(href)
                continue
            etag = resp.findtext(f"{DAV}propstat/{DAV}prop/{DAV}getetag")
            changed.append((href, etag or None))
        new_token = root.findtext(f"{DAV}sync-token")
        return Changes(new_token, changed, sorted(deleted), full)

    def fetch(self, calendar_path: str, hrefs: Sequence[str]) -> list[tuple[str, str | None, str]]:
        """(href, etag, iCalendar text) of the objects that still exist (calendar-multiget)."""
        out: list[tuple[str, str | None, str]] = []
        for i in range(0, len(hrefs), MULTIGET_BATCH):
            root = self._report(calendar_path, _multiget_body(hrefs[i : i + MULTIGET_BATCH]))
            for resp in root.findall(f"{DAV}response"):
                for ps in resp.findall(f"{DAV}propstat"):
                    if " 200" not in ps.findtext(f"{DAV}status", ""):
                        continue
                    data = ps.findtext(f"{DAV}prop/{CAL}calendar-data")
                    if not data:
                        continue
                    etag = ps.findtext(f"{DAV}prop/{DAV}getetag")
                    out.append((_path(resp.findtext(f"{DAV}href", "")), etag or None, data))
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

    def members(self, calendar_path: str) -> tuple[str | None, int]:
        """The calendar's own ETag and how many objects it holds (PROPFIND, Depth 1),
        from one answer of the server."""
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>'
        )
        try:
            r = self._session().request(
                "PROPFIND",
                self.url(calendar_path),
                data=body.encode("utf-8"),
                headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
                timeout=LONG_TIMEOUT_S,
            )
        except requests.RequestException as exc:
            raise CalDavError(f"PROPFIND on {calendar_path}: {exc}") from exc
        if r.status_code != 207 or len(r.content) > MAX_REPORT_BYTES:
            raise CalDavError(f"PROPFIND on {calendar_path}: HTTP {r.status_code}")
        try:
            root = ET.fromstring(r.content)
        except ET.ParseError as exc:
            raise CalDavError(f"PROPFIND on {calendar_path}: not XML: {exc}") from exc
        own = calendar_path.rstrip("/")
        etag: str | None = None
        count = 0
        for resp in root.findall(f"{DAV}response"):
            if _path(resp.findtext(f"{DAV}href", "")).rstrip("/") == own:
                etag = resp.findtext(f"{DAV}propstat/{DAV}prop/{DAV}getetag") or None
            else:
                count += 1
        return etag, count

    # ----------------------------------------------------------------- writing

    def put_calendar(self, calendar_path: str, ics: str, etag: str) -> bool:
        """Write the whole calendar in one request (a PUT on the collection, which
        Radicale stores as one object per UID), only if it is still the calendar whose
        ETag is `etag` (If-Match: a change meanwhile is a 412 and nothing is replaced).
        False when refused or not supported: the caller writes object by object."""
        try:
            r = self._session().put(
                self.url(calendar_path),
                data=ics.encode("utf-8"),
                headers={"Content-Type": "text/calendar; charset=utf-8", "If-Match": etag},
                timeout=LONG_TIMEOUT_S,
            )
        except requests.RequestException as exc:
            raise CalDavError(f"PUT {calendar_path}: {exc}") from exc
        if r.status_code in (200, 201, 204):
            return True
        if r.status_code in (400, 403, 405, 409, 412, 413, 415, 501, 507):
            log.info("whole-calendar PUT on %s refused: HTTP %s", calendar_path, r.status_code)
            return False
        raise CalDavError(f"PUT {calendar_path}: HTTP {r.status_code} {r.text[:200]}")

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
