"""`fieldmesh ar --territory NAME --out DIR` against the real database."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest

from fieldmesh.cli import build_parser
from kernel.settings import Settings
from tests.ar_viewer.gltf_check import check_glb
from tests.ar_viewer.test_web import _seed

pytestmark = pytest.mark.integration


def test_ar_command_writes_glb_usdz_png_and_page(
    db: psycopg.Connection,
    test_settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"CLI {uuid.uuid4().hex[:8]}"
    _seed(db, name)
    args = build_parser().parse_args(["ar", "--territory", name, "--out", str(tmp_path / "out")])
    assert args.func(args, test_settings) == 0
    out = tmp_path / "out"
    check_glb((out / "scene.glb").read_bytes())
    assert (out / "scene.usdz").read_bytes()[:2] == b"PK"
    assert (out / "scene.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "index.html").read_text()
    assert 'src="scene.glb' in html and 'ios-src="scene.usdz' in html
    printed = capsys.readouterr().out
    report = json.loads(printed.strip().splitlines()[-1])
    assert report["triangles"] > 0 and report["issues"] == 1
    assert "left_out" in printed and "nowhere" in printed


def test_ar_command_names_a_missing_territory(
    test_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(
        ["ar", "--territory", "does-not-exist", "--out", str(tmp_path)]
    )
    assert args.func(args, test_settings) == 1
    assert "does-not-exist" in capsys.readouterr().out
