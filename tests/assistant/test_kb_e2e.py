"""The knowledge base screen, the Assistant view and the customer bot in headless Chromium:
a manager writes a public article and finds it by a question; a visitor asks the chat
widget the same question and is answered with the article's link."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kernel.settings import PROJECT_ROOT, Settings
from tests.appserver import serve_app
from tests.console.conftest import make_user

pytestmark = pytest.mark.integration
DRIVER = Path(__file__).with_name("e2e_kb.cjs")


@pytest.fixture(scope="module")
def url(test_settings: Settings) -> Iterator[str]:
    with serve_app(test_settings) as u:
        yield u


def test_a_manager_writes_and_finds_an_article_and_the_bot_quotes_it(
    url: str, test_settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:6]
    manager = make_user(test_settings.dsn, "manager")
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        conn.execute("UPDATE assistant_bot_settings SET enabled = true")
    params = {
        "user": manager,
        "title": f"Defrosting a frozen Zephyr{tag} heat pump",
        "body": f"When the outdoor unit of a Zephyr{tag} heat pump is covered in ice, start "
        "the manual defrost: hold MODE and DOWN for three seconds.",
        "question": f"how do I defrost my Zephyr{tag} heat pump",
    }
    try:
        proc = subprocess.run(
            ["node", str(DRIVER), url, json.dumps(params)],
            capture_output=True, text=True, timeout=180, cwd=PROJECT_ROOT, check=False,
        )  # fmt: skip
    finally:
        with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
            conn.execute("UPDATE assistant_bot_settings SET enabled = false")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(lines[-1])
    # an empty article: each missing part said beside it, the focus on the first; the
    # territory is chosen by name (it was a number input for the territory's id)
    empty = r["empty"]
    assert (empty["title"], empty["body"]) == ("is required", "is required")
    assert empty["invalid"] == ["kb-form-title", "kb-form-body"]
    assert empty["focus"] == "kb-form-title"
    assert empty["territories"][0] == "Every territory"
    assert not any(t.strip().isdigit() for t in empty["territories"])
    assert r["shown"] == params["title"]
    assert r["hash"].startswith("#/kb/")
    article_id = int(r["hash"].split("/")[-1])
    assert r["first"] == params["title"]
    assert r["phone"]["width"] >= 300 and r["phone"]["overflow"] <= 0, r["phone"]
    assert "Per intent" in r["figures"]
    assert f"/help/articles/{article_id}" in r["chat"] and "MODE and DOWN" in r["chat"]
    # the widget said the e-mail address was wrong, and answered without it
    assert "That e-mail address looks wrong and is not used" in r["badEmail"]["said"]
    assert r["badEmail"]["invalid"] == "true"
    assert r["errors"] == []
