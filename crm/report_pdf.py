"""Reports and lists as PDF: an HTML table printed by headless Chromium.

Chromium (Debian's `chromium`, installed by deploy/install-debian.sh; the same browser the
Playwright tests drive) prints a 2,000-row table in under two seconds, where WeasyPrint
took twelve (DESIGN.md field notes). The document is self-contained: every value escaped,
a Content-Security-Policy that allows no request and no script, a fresh
profile per print in a temporary directory. At most MAX_PDF_ROWS rows (a document, not a
data dump: XLSX and CSV carry more), at most PRINTS_AT_ONCE prints per process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crm.errors import CrmError

MAX_PDF_ROWS = 5_000
PRINT_TIMEOUT_S = 90.0
PRINTS_AT_ONCE = 2
_CSS = """
@page { size: A4 landscape; margin: 12mm; }
body { font: 9pt/1.35 "DejaVu Sans", Arial, sans-serif; color: #111; }
h1 { font-size: 14pt; margin: 0 0 2mm; }
p.meta { color: #555; margin: 0 0 4mm; }
table { border-collapse: collapse; width: 100%; }
thead { display: table-header-group; }
th { text-align: left; border-bottom: 1.5pt solid #333; padding: 1.5mm 2mm; }
td { border-bottom: 0.5pt solid #ccc; padding: 1mm 2mm; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr { page-break-inside: avoid; }
"""

_lock: dict[int, asyncio.Semaphore] = {}


def _cell(v: Any) -> tuple[str, bool]:
    if v is None:
        return "", False
    if isinstance(v, bool):
        return ("yes" if v else "no"), False
    if isinstance(v, int):
        return f"{v:,}", True
    if isinstance(v, float):
        return f"{v:,.2f}", True
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), False
    return str(v), False


def table_html(title: str, heads: Sequence[str], rows: Sequence[Sequence[Any]], note: str) -> str:
    """A printable, self-contained HTML document of one table."""
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none';"
        " style-src 'unsafe-inline'\">",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='meta'>{html.escape(note)}</p>",
        "<table><thead><tr>",
        *(f"<th>{html.escape(h)}</th>" for h in heads),
        "</tr></thead><tbody>",
    ]
    for row in rows:
        out.append("<tr>")
        for v in row:
            text, num = _cell(v)
            out.append(
                f"<td class='num'>{html.escape(text)}</td>"
                if num
                else f"<td>{html.escape(text)}</td>"
            )
        out.append("</tr>")
    if not rows:
        out.append(f"<tr><td colspan='{max(1, len(heads))}'>No rows.</td></tr>")
    out.append("</tbody></table></body></html>")
    return "".join(out)


def check_rows(count: int) -> None:
    if count > MAX_PDF_ROWS:
        raise CrmError(
            f"{count:,} rows: a PDF holds at most {MAX_PDF_ROWS:,}; narrow the filter or"
            " export XLSX",
            field="filter",
            status=422,
            code="too_many_rows",
        )


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise CrmError(
        "PDF export needs Chromium on the server (deploy/install-debian.sh installs it)",
        status=503,
        code="unavailable",
    )


async def print_pdf(document: str) -> bytes:
    """The HTML document printed to PDF by headless Chromium."""
    exe = chromium()
    sem = _lock.setdefault(id(asyncio.get_running_loop()), asyncio.Semaphore(PRINTS_AT_ONCE))
    async with sem:
        with tempfile.TemporaryDirectory(prefix="fm-pdf-") as tmp:
            src, out = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
            await asyncio.to_thread(src.write_text, document, "utf-8")
            proc = await asyncio.create_subprocess_exec(
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={tmp}/profile",
                "--no-pdf-header-footer",
                f"--print-to-pdf={out}",
                src.as_uri(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                _, err = await asyncio.wait_for(proc.communicate(), PRINT_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise CrmError(
                    "printing the PDF took too long", status=503, code="unavailable"
                ) from None
            data = await asyncio.to_thread(out.read_bytes) if out.exists() else b""
            if proc.returncode != 0 or not data.startswith(b"%PDF"):
                raise RuntimeError(
                    f"chromium --print-to-pdf failed ({proc.returncode}): {err[-500:]!r}"
                )
            return data
