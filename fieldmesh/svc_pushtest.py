"""A local Web Push service for tests and benchmarks: npm `web-push-testing` (RFC 8030
endpoints that check the VAPID signature and decrypt RFC 8291 messages), since the browser
vendors' push services are not reachable here (Chromium cannot subscribe to its own
offline). Production pushes go to the endpoints browsers give (FCM, Mozilla, Apple);
this is a stand-in for them, never part of `fieldmesh up`.

It hands out subscriptions (`subscribe`) and keeps each one's decrypted messages
(`messages`); a test relays them into Chromium's service worker (CDP
`ServiceWorker.deliverPushMessage`), which is what the vendor's channel does on a phone.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from fieldmesh.svc_node import NodeService
from kernel.settings import PROJECT_ROOT

SERVER_JS = PROJECT_ROOT / "node_modules" / "web-push-testing" / "src" / "bin" / "server.js"


class LocalPushService(NodeService):
    name = "web-push-testing"

    def __init__(self, port: int, log_path: Path) -> None:
        super().__init__(log_path)
        self.port = port

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def command(self) -> list[str]:
        return ["node", str(SERVER_JS), str(self.port)]

    def ready(self) -> bool:
        self._post("/status", {})
        return True

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            text = r.read()
        try:
            return json.loads(text)
        except ValueError:
            return None  # /status and /expire-subscription answer plain text

    def subscribe(self, application_server_key: str) -> dict[str, Any]:
        """A PushSubscription JSON (endpoint, keys) plus its `clientHash`."""
        out: dict[str, Any] = self._post(
            "/subscribe",
            {"userVisibleOnly": "true", "applicationServerKey": application_server_key},
        )["data"]
        return out

    def messages(self, client_hash: str) -> list[str]:
        out: list[str] = self._post("/get-notifications", {"clientHash": client_hash})["data"][
            "messages"
        ]
        return out

    def expire(self, client_hash: str) -> None:
        self._post(f"/expire-subscription/{client_hash}", {})
