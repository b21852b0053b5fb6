"""The inbox page and the chat widget's script are served; bad SMS callbacks are refused."""

from __future__ import annotations

import requests


def test_inbox_page_and_widget_script_are_served(app_url: str) -> None:
    page = requests.get(f"{app_url}/engage/inbox/", timeout=30)
    assert page.status_code == 200 and "/engage/inbox/inbox.js" in page.text
    js = requests.get(f"{app_url}/engage/inbox/inbox.js", timeout=30)
    assert js.status_code == 200 and "/inbox/live" in js.text
    widget = requests.get(f"{app_url}/engage/chat/widget.js", timeout=30)
    assert widget.status_code == 200 and "/engage/chat/socket" in widget.text


def test_an_sms_callback_without_the_key_is_refused(app_url: str) -> None:
    r = requests.get(
        f"{app_url}/engage/sms/inbound",
        params={"from": "+4915100000000", "to": "4000", "text": "hi", "id": "1", "key": "wrong"},
        timeout=30,
    )
    assert r.status_code == 404 and r.json()["error"]["field"] == "key"
