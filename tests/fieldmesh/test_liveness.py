"""The supervisor's liveness check: a role that answers its health probe as unhealthy for
longer than the bound is killed and started again; a healthy one is left alone."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

from fieldmesh.run import Child, Layout, Supervisor
from kernel.settings import Settings
from tests.eventually import eventually_async
from tests.ports import reserve

ROLE = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            code = 200 if sys.argv[2] == "ok" else 503
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status": "%s"}' % sys.argv[2].encode())

        def log_message(self, *a):
            pass

    HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)


def test_a_wedged_role_is_restarted_and_a_healthy_one_is_not(tmp_path: Path) -> None:
    script = tmp_path / "role.py"
    script.write_text(ROLE)
    (sup, wedged, fine), _ = reserve(3)
    layout = Layout(0, sup, 0, 0, 0, ())
    children = [
        Child("sealer", 0, wedged, [sys.executable, str(script), str(wedged), "stalled"]),
        Child("jobs", 0, fine, [sys.executable, str(script), str(fine), "ok"]),
    ]
    supervisor = Supervisor(
        Settings(state_dir=tmp_path), children, layout, liveness_s=2.0, probe_every_s=0.3
    )

    async def scenario() -> None:
        task = asyncio.create_task(supervisor.run())

        async def killed_twice() -> bool | None:
            return children[0].killed_unhealthy >= 2 or None

        try:
            await eventually_async(killed_twice, timeout_s=60, interval_s=0.2, what="restarts")
        finally:
            supervisor._stop.set()
            await task

    asyncio.run(scenario())
    wedged_child, fine_child = children
    assert wedged_child.killed_unhealthy >= 2 and wedged_child.restarts >= 1
    assert fine_child.killed_unhealthy == 0 and fine_child.restarts == 0
    assert not wedged_child.alive() and not fine_child.alive()  # stopped with the supervisor
