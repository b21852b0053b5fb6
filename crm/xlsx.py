"""A one-sheet XLSX workbook streamed to a file, row by row, for exports of many rows.

xlsxwriter spends some 15 µs of Python per cell (a 100k-row list export of seven columns:
8 s of its 11); a list export needs none of its features beyond text, numbers, booleans, a
bold header and column widths, so this writes the SpreadsheetML itself: each row one
string of inline-string (`t="inlineStr"`) and number cells, appended to the sheet's
deflated ZIP entry as it comes, in constant memory. Text is written as text, never as a
formula; characters XML 1.0 cannot carry are written as Excel's `_xHHHH_` escapes (as
xlsxwriter does); a text of more than 32,767 characters (a cell's limit) is cut there.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Callable
from typing import IO, Any
from xml.sax.saxutils import escape

MAX_ROWS = 1_048_576  # a sheet's rows
MAX_CELL = 32_767  # characters of a text cell

_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

_PARTS = {
    "[Content_Types].xml": _HEAD
    + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
    f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_CT}.worksheet+xml"/>'
    f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.styles+xml"/>'
    "</Types>",
    "_rels/.rels": _HEAD + f'<Relationships xmlns="{_PKG}">'
    f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>",
    "xl/_rels/workbook.xml.rels": _HEAD + f'<Relationships xmlns="{_PKG}">'
    f'<Relationship Id="rId1" Type="{_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_REL}/styles" Target="styles.xml"/>'
    "</Relationships>",
    # style 0: the default; style 1: bold (the header)
    "xl/styles.xml": _HEAD + f'<styleSheet xmlns="{_NS}">'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
    '</cellStyleXfs><cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"'
    ' xfId="0"/><xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0"'
    ' applyFont="1"/></cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0"'
    ' builtinId="0"/></cellStyles></styleSheet>',
}

# what XML 1.0 cannot hold, and what Excel reads back as an escape: _xHHHH_ itself. The
# markup written here has neither, so a whole chunk of rows is searched at once.
_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|_x[0-9A-Fa-f]{4}_")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _bad(m: re.Match[str]) -> str:
    s = m.group()
    return f"_x{ord(s):04X}_" if len(s) == 1 else "_x005F" + s  # a literal "_x0041_" stays so


def column_letters(j: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    out = ""
    j += 1
    while j:
        j, r = divmod(j - 1, 26)
        out = chr(65 + r) + out
    return out


def _text(ref: str, s: str, style: str = "") -> str:
    if len(s) > MAX_CELL:
        s = s[:MAX_CELL]
    if "&" in s or "<" in s or ">" in s:
        s = escape(s)
    space = ' xml:space="preserve"' if s.strip() is not s else ""
    return f'<c r="{ref}"{style} t="inlineStr"><is><t{space}>{s}</t></is></c>'


def _sheet_name(title: str) -> str:
    return title[:31].translate(str.maketrans("[]:*?/\\", " " * 7)).strip("'") or "Sheet1"


class XlsxWriter:
    """`add(rows)` any number of times, then `close()`; `path` is the workbook."""

    def __init__(
        self,
        path: str,
        title: str,
        heads: list[str],
        other: Callable[[Any], Any] = str,
    ) -> None:
        """`other`: what a cell that is not str, bool, int, float or None is written as
        (a str, int, float or bool; by default its text)."""
        self.path = path
        self._other = other
        self._zip = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        self._title = _sheet_name(title)
        self._cols = [column_letters(j) for j in range(len(heads))]
        self._sheet: IO[bytes] = self._zip.open("xl/worksheets/sheet1.xml", "w", force_zip64=True)
        widths = "".join(
            f'<col min="{j}" max="{j}" width="{max(12, min(40, len(h) + 2))}" customWidth="1"/>'
            for j, h in enumerate(heads, start=1)
        )
        head = "".join(_text(f"{c}1", h, ' s="1"') for c, h in zip(self._cols, heads, strict=True))
        head = _BAD.sub(_bad, head)
        self._sheet.write(
            (
                f'{_HEAD}<worksheet xmlns="{_NS}" xmlns:r="{_REL}">'
                + (f"<cols>{widths}</cols>" if widths else "")
                + f'<sheetData><row r="1">{head}</row>'
            ).encode()
        )
        self.rows = 1  # written, the header included

    def add(self, rows: list[list[Any]]) -> None:
        """Rows of cells in the heads' order: str, int, float, bool, None (left empty) or
        what `other` makes of anything else."""
        if self.rows + len(rows) > MAX_ROWS:
            raise ValueError(f"a sheet holds at most {MAX_ROWS:,} rows")
        cols, other, text = self._cols, self._other, _text
        out: list[str] = []
        n = self.rows
        for cells in rows:
            n += 1
            out.append(f'<row r="{n}">')
            for c, v in zip(cols, cells, strict=False):
                t = type(v)
                if t is not str and v is not None and t is not int and t is not float:
                    v = other(v) if t is not bool else v
                    t = type(v)
                if v is None:
                    continue
                if t is str:
                    out.append(text(f"{c}{n}", v))
                elif t is bool:
                    out.append(f'<c r="{c}{n}" t="b"><v>{int(v)}</v></c>')
                elif t is int or (t is float and math.isfinite(v)):
                    out.append(f'<c r="{c}{n}"><v>{v!r}</v></c>')
                else:  # nan, inf, or what `other` left: as its text
                    out.append(text(f"{c}{n}", str(v)))
            out.append("</row>")
        chunk = "".join(out)
        if ("_x" in chunk or _CONTROL.search(chunk) is not None) and _BAD.search(chunk):
            chunk = _BAD.sub(_bad, chunk)
        self._sheet.write(chunk.encode())
        self.rows = n

    def close(self) -> str:
        self._sheet.write(b"</sheetData></worksheet>")
        self._sheet.close()
        for name, body in _PARTS.items():
            self._zip.writestr(name, body)
        self._zip.writestr(
            "xl/workbook.xml",
            f'{_HEAD}<workbook xmlns="{_NS}" xmlns:r="{_REL}"><sheets>'
            f'<sheet name="{escape(self._title, {chr(34): "&quot;"})}" sheetId="1" r:id="rId1"/>'
            "</sheets></workbook>",
        )
        self._zip.close()
        return self.path
