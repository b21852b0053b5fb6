"""The console's browser JavaScript: type-checked, linted, and free of test probes."""

from __future__ import annotations

import re

from kernel.settings import PROJECT_ROOT

STATIC = PROJECT_ROOT / "console" / "static"
SOURCES = sorted(STATIC.rglob("*.js"))
# a global a test or benchmark reads (window.__fm = ..., self.__x = ...)
PROBE = re.compile(r"\b(?:window|self|globalThis)\.__\w+")


def test_every_console_script_is_type_checked() -> None:
    assert len(SOURCES) >= 10
    unchecked = [
        str(p.relative_to(PROJECT_ROOT))
        for p in SOURCES
        if not p.read_text().startswith("// @ts-check\n")
    ]
    assert unchecked == []


def test_no_test_probe_in_production_code() -> None:
    probes = {
        str(p.relative_to(PROJECT_ROOT)): PROBE.findall(p.read_text())
        for p in [*SOURCES, *STATIC.rglob("*.html")]
        if PROBE.search(p.read_text())
    }
    assert probes == {}


def test_the_probe_pattern_finds_a_probe() -> None:
    assert PROBE.findall("const probe = (window.__fm = window.__fm || {});") == [
        "window.__fm",
        "window.__fm",
    ]
    assert PROBE.findall("window.fm = 1; performance.mark('fm:x');") == []
