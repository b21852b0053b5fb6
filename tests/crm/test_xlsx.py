"""crm.xlsx: the streamed workbook reads back, cell for cell, in an independent reader
(openpyxl), whatever the text holds."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import openpyxl
import pytest

from crm.xlsx import MAX_CELL, XlsxWriter, column_letters

AWKWARD = [
    "plain",
    "=SUM(A1:A2)",  # a formula's text stays text
    "a & b <c> \"d\" 'e'",
    "  padded  ",
    "tab\there and\nnew line",
    "bell\x07 and nul\x00 and \x1f",
    "literal _x0041_ escape",
    "Ünïcödé € 漢字 🙂",
    "",
]


def excel_escaped(s: str) -> str:
    s = s.replace("_x0041_", "_x005F_x0041_")
    return s.replace("\x07", "_x0007_").replace("\x00", "_x0000_").replace("\x1f", "_x001F_")


def read(path: Path) -> list[list[object]]:
    book = openpyxl.load_workbook(path)
    return [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]


def test_cells_read_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    book = XlsxWriter(str(path), "Con[ta]cts: all?", ["Text", "Number", "Flag", "When"])
    book.add([[s, i, i % 2 == 0, None] for i, s in enumerate(AWKWARD)])
    book.add([["big", 2**40, False, None], ["float", 1234.5, True, None], [None, -0.25]])
    book.add([["nan", float("nan"), None, None], ["day", None, None, dt.date(2026, 12, 7)]])
    book.close()
    rows = read(path)
    assert rows[0] == ["Text", "Number", "Flag", "When"]
    for i, s in enumerate(AWKWARD, start=1):
        text, number, flag, _ = rows[i]
        # what XML cannot carry (and a literal escape) as Excel's _xHHHH_ escapes, which
        # Excel decodes and openpyxl shows as they are
        assert text in (s or None, excel_escaped(s)), (i, text)
        assert number == i - 1 and flag is ((i - 1) % 2 == 0)
    n = len(AWKWARD)
    assert rows[n + 1][:3] == ["big", 2**40, False]
    assert rows[n + 2][:3] == ["float", 1234.5, True]
    assert rows[n + 3][:2] == [None, -0.25]
    assert rows[n + 4][:2] == ["nan", "nan"]  # not a number a sheet can hold: its text
    assert rows[n + 5][3] == "2026-12-07"  # anything else: its text (str by default)
    book2 = openpyxl.load_workbook(path)
    sheet = book2.worksheets[0]
    assert sheet.title == "Con ta cts  all "
    assert sheet["A1"].font.b and not sheet["A2"].font.b
    assert sheet["A2"].data_type == "s" and sheet["A3"].value == "=SUM(A1:A2)"


def test_the_package_is_well_formed_and_declares_every_part(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    book = XlsxWriter(str(path), "Sheet", ["A"])
    book.add([["x\x01y"], ["<&>"]])
    book.close()
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        for name in names:
            ElementTree.fromstring(z.read(name))  # every part parses as XML
        types = z.read("[Content_Types].xml").decode()
    assert {"xl/workbook.xml", "xl/styles.xml", "xl/worksheets/sheet1.xml"} <= names
    for part in ("/xl/workbook.xml", "/xl/styles.xml", "/xl/worksheets/sheet1.xml"):
        assert f'PartName="{part}"' in types


def test_long_text_is_cut_at_a_cells_limit_and_too_many_rows_refused(tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    book = XlsxWriter(str(path), "Long", ["A"], other=lambda v: f"<{v}>")
    book.add([["y" * (MAX_CELL + 10)], [object]])
    with pytest.raises(ValueError):
        book.add([["x"]] * 1_048_576)
    book.close()
    rows = read(path)
    assert rows[1] == ["y" * MAX_CELL]
    assert rows[2] == [f"<{object}>"]


def test_column_letters() -> None:
    assert [column_letters(j) for j in (0, 25, 26, 51, 52, 701, 702)] == [
        "A",
        "Z",
        "AA",
        "AZ",
        "BA",
        "ZZ",
        "AAA",
    ]
