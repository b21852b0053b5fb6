"""The Makefile's install markers: `make test` and `make bench-*` reinstall the Node and
Python packages when the lock or pyproject changed, never because a checkout made those
files newer than an up-to-date install (a worktree sharing node_modules through a symlink
ran `npm ci` through it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from kernel.settings import PROJECT_ROOT

FILES = ("Makefile", "package.json", "package-lock.json", "pyproject.toml")


def _make(cwd: Path, target: str) -> str:
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            target,
            "NPM_CI=echo RAN-NPM-CI",
            "PIP_INSTALL=echo RAN-PIP",
            "PYTHON=true",  # `true -m venv .venv`: no virtualenv is made
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def _checkout(tmp_path: Path) -> Path:
    for name in FILES:
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    return tmp_path


def _touch_later(*paths: Path) -> None:
    for p in paths:
        st = p.stat()
        os.utime(p, (st.st_atime + 3600, st.st_mtime + 3600))


def test_node_reinstalls_when_the_lock_changes_not_when_it_is_newer(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    assert "RAN-NPM-CI" in _make(root, "node")
    assert "RAN-NPM-CI" not in _make(root, "node")
    _touch_later(root / "package.json", root / "package-lock.json")  # a fresh checkout
    assert "RAN-NPM-CI" not in _make(root, "node")
    with (root / "package-lock.json").open("a") as fh:
        fh.write("\n")
    assert "RAN-NPM-CI" in _make(root, "node")
    assert "RAN-NPM-CI" not in _make(root, "node")


def test_the_venv_reinstalls_when_pyproject_changes_not_when_it_is_newer(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    assert "RAN-PIP" in _make(root, "venv")
    _touch_later(root / "pyproject.toml")
    assert "RAN-PIP" not in _make(root, "venv")
    with (root / "pyproject.toml").open("a") as fh:
        fh.write("\n# changed\n")
    assert "RAN-PIP" in _make(root, "venv")


def test_an_earlier_versions_empty_marker_newer_than_the_lock_counts(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    marker = root / "node_modules" / ".installed"
    marker.parent.mkdir()
    marker.touch()
    _touch_later(marker)
    assert "RAN-NPM-CI" not in _make(root, "node")
    assert len(marker.read_text().strip()) == 64  # now it holds the lock's hash
    marker.write_text("")
    _touch_later(root / "package-lock.json", root / "package-lock.json")
    assert "RAN-NPM-CI" in _make(root, "node")
