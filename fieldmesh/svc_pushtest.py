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
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel.settings import PROJECT_ROOT

SERVER_JS = PROJECT_ROOT / "node_modules" / "web-push-testing" / "src" / "bin" / "server.js"


class PushServiceError(RuntimeError):
    pass


@dataclass
class LocalPushService:
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def start(self, timeout_s: float = 20.0) -> LocalPushService:
        if not SERVER_JS.exists():
            raise PushServiceError("web-push-testing is missing: npm ci (package.json)")
        log = open(self.log_path, "ab")  # noqa: SIM115 -- the child keeps it
        self.proc = subprocess.Popen(
            ["node", str(SERVER_JS), str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise PushServiceError(f"web-push-testing exited: see {self.log_path}")
                try:
                    self._post("/status", {})
                    return self
                except OSError:
                    time.sleep(0.1)
            raise PushServiceError("web-push-testing did not answer")
        except BaseException:
            self.stop()  # never leave the process behind
            raise

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> LocalPushService:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

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
