"""`fieldmesh run`: the whole product, every role as its own supervised process.

    fieldmesh run                       every role (api x --workers, gateway x --gateways,
                                        sealer, dispatcher, jobs)
    fieldmesh run --role gateway        one role alone (repeatable), for deployment
    fieldmesh run --detach              in the background; `fieldmesh down` stops it

Embedded PostgreSQL and Mosquitto are started first (as `fieldmesh up`) unless
DATABASE_URL / MQTT_URL name external ones. Ports follow FIELDMESH_HTTP_PORT (P):

    P       api (all workers share it)     P+1  the supervisor's /health of every role
    P+2     sealer /health                 P+3  dispatcher /health
    P+4     jobs /health                   P+5+i  gateway i /health and /metrics

A role that exits is started again after a backoff (0.5 s doubling to 30 s; reset once
it has stayed up a minute). SIGTERM or SIGINT asks every child to stop (SIGTERM), waits
`--stop-timeout-s`, then kills what is left; children also get SIGTERM if the
supervisor itself dies (PR_SET_PDEATHSIG), so none is ever left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from fieldmesh.roles import ROLES
from kernel.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

RESTART_BASE_S = 0.5
RESTART_CAP_S = 30.0
STABLE_AFTER_S = 60.0  # up this long: the next failure starts the backoff afresh
# A child that reports unhealthy (or, once past its start, does not answer) this long is
# killed and restarted, like a liveness probe: a role wedged without exiting (a dead
# database connection it never replaces, a blocked loop) must not stay wedged.
LIVENESS_S = 90.0
PROBE_EVERY_S = 5.0
_PR_SET_PDEATHSIG = 1


class RunError(ValueError):
    """A setting or option that cannot work (exit code 2)."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Which role processes run, and the port of each."""

    api: int
    supervisor: int
    sealer: int
    dispatcher: int
    jobs: int
    gateways: tuple[int, ...]

    @classmethod
    def from_settings(cls, settings: Settings, gateways: int) -> Layout:
        p = settings.http_port
        layout = cls(p, p + 1, p + 2, p + 3, p + 4, tuple(p + 5 + i for i in range(gateways)))
        top = max((layout.jobs, *layout.gateways))
        if top > 65535:
            raise RunError(f"FIELDMESH_HTTP_PORT={p}: the roles need ports {p}-{top}, past 65535")
        return layout


@dataclass(slots=True)
class Child:
    role: str
    index: int
    port: int
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures: int = 0  # exits in a row without staying up STABLE_AFTER_S
    next_start: float = 0.0
    last_exit: int | None = None
    unhealthy_since: float | None = None
    killed_unhealthy: int = 0  # times the liveness check restarted it

    @property
    def name(self) -> str:
        return f"{self.role}-{self.index}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def plan_children(
    settings: Settings,
    roles: Sequence[str],
    layout: Layout,
    workers: int,
    dispatch_clock: str,
    verbose: int,
) -> list[Child]:
    base = [sys.executable, "-m", "fieldmesh.roles"]
    flags = ["-v"] * max(verbose, 1) + ["--dispatch-clock", dispatch_clock]
    children: list[Child] = []
    for role in ROLES:
        if role not in roles:
            continue
        if role == "api":
            ports = [layout.api] * workers
        elif role == "gateway":
            ports = list(layout.gateways)
        else:
            ports = [getattr(layout, role)]
        for i, port in enumerate(ports):
            argv = [*base, role, "--port", str(port), "--index", str(i), *flags]
            if role == "gateway":  # its partition: pod ordinal x gateways per host + i
                argv += ["--per-host", str(len(ports))]
            children.append(Child(role, i, port, argv))
    return children


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        children: list[Child],
        layout: Layout,
        *,
        stop_timeout_s: float = 20.0,
        liveness_s: float = LIVENESS_S,
        probe_every_s: float = PROBE_EVERY_S,
    ) -> None:
        self.settings = settings
        self.children = children
        self.layout = layout
        self.stop_timeout_s = stop_timeout_s
        self.liveness_s = liveness_s
        self.probe_every_s = probe_every_s
        self._stop = asyncio.Event()

    def _start(self, child: Child) -> None:
        child.proc = subprocess.Popen(
            child.argv, cwd=PROJECT_ROOT, env=dict(os.environ), preexec_fn=die_with_parent
        )
        child.started_at = time.monotonic()
        child.unhealthy_since = None
        log.info("started %s (pid %d, port %d)", child.name, child.proc.pid, child.port)

    def _reap(self, child: Child) -> None:
        assert child.proc is not None
        code = child.proc.returncode
        up_s = time.monotonic() - child.started_at
        child.failures = 1 if up_s >= STABLE_AFTER_S else child.failures + 1
        delay = min(RESTART_CAP_S, RESTART_BASE_S * 2 ** (child.failures - 1))
        child.last_exit, child.proc = code, None
        child.restarts += 1
        child.next_start = time.monotonic() + delay
        log.warning(
            "%s exited with %s after %.1f s; restart in %.1f s", child.name, code, up_s, delay
        )
        print(
            f"fieldmesh run: {child.name} exited ({code}); restarting in {delay:.1f} s",
            file=sys.stderr,
            flush=True,
        )

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        runner = await self._health_site()
        next_probe = time.monotonic() + self.probe_every_s
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                for child in self.children:
                    if child.proc is not None and child.proc.poll() is not None:
                        self._reap(child)
                    if child.proc is None and now >= child.next_start:
                        self._start(child)
                if now >= next_probe:
                    next_probe = now + self.probe_every_s
                    await self._liveness()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=0.25)
        finally:
            await self._shutdown()
            await runner.cleanup()
        return 0

    async def _liveness(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            live = [c for c in self.children if c.alive()]
            reports = await asyncio.gather(*(self._child_health(session, c) for c in live))
        now = time.monotonic()
        for child, report in zip(live, reports, strict=True):
            bad = report["status"] == "unhealthy" or (
                report["status"] == "starting" and now - child.started_at > self.liveness_s
            )
            if not bad:
                child.unhealthy_since = None
                continue
            if child.unhealthy_since is None:
                child.unhealthy_since = now
            elif now - child.unhealthy_since >= self.liveness_s and child.proc is not None:
                log.warning(
                    "%s unhealthy for %.0f s (%s): killed, to be restarted",
                    child.name,
                    now - child.unhealthy_since,
                    str(report.get("detail"))[:300],
                )
                child.killed_unhealthy += 1
                with contextlib.suppress(ProcessLookupError):
                    child.proc.kill()

    async def _shutdown(self) -> None:
        live = [c for c in self.children if c.alive()]
        for c in live:
            assert c.proc is not None
            with contextlib.suppress(ProcessLookupError):
                c.proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*(asyncio.to_thread(_wait, c, self.stop_timeout_s) for c in live))
        for c in live:
            if c.alive():
                assert c.proc is not None
                log.warning("%s did not stop in %.0f s: killed", c.name, self.stop_timeout_s)
                c.proc.kill()
            if c.proc is not None:
                c.proc.wait()

    # -- the aggregated health ---------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            reports = await asyncio.gather(*(self._child_health(session, c) for c in self.children))
        roles: dict[str, list[dict[str, Any]]] = {}
        for child, report in zip(self.children, reports, strict=True):
            roles.setdefault(child.role, []).append(report)
        ok = all(r["status"] == "ok" for rs in roles.values() for r in rs)
        return {"status": "ok" if ok else "degraded", "roles": roles}

    async def _child_health(self, session: aiohttp.ClientSession, child: Child) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": child.index,
            "pid": child.proc.pid if child.proc is not None else None,
            "port": child.port,
            "restarts": child.restarts,
            "last_exit": child.last_exit,
            "killed_unhealthy": child.killed_unhealthy,
        }
        if not child.alive():
            return {**out, "status": "down"}
        url = f"http://{_client_host(self.settings.http_host)}:{child.port}/health"
        try:
            async with session.get(url) as resp:
                body = await resp.json(content_type=None)
                status = "ok" if resp.status == 200 else "unhealthy"
                return {**out, "status": status, "detail": body}
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return {**out, "status": "starting", "detail": f"{type(exc).__name__}"}

    async def _health_site(self) -> web.AppRunner:
        async def handle(_request: web.Request) -> web.Response:
            body = await self.health()
            return web.json_response(body, status=200 if body["status"] == "ok" else 503)

        app = web.Application()
        app.router.add_get("/health", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.settings.http_host, self.layout.supervisor).start()
        return runner


def _wait(child: Child, timeout_s: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        if child.proc is not None:
            child.proc.wait(timeout_s)


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def console_url(settings: Settings) -> str:
    return f"http://{_client_host(settings.http_host)}:{settings.http_port}/console/"


def pid_file(settings: Settings) -> Path:
    return settings.state_dir / "run.pid"


def running_pid(settings: Settings) -> int | None:
    """The pid of a supervisor running for this state dir, if any."""
    try:
        pid = int(pid_file(settings).read_text().strip())
    except (OSError, ValueError):
        return None
    if pid == os.getpid():  # a restarted container's pid 1 reading its own old pid file
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def stop_running(settings: Settings, timeout_s: float = 40.0) -> bool:
    """Stop a supervisor of this state dir (`fieldmesh down`); True if one was running."""
    pid = running_pid(settings)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while running_pid(settings) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    if running_pid(settings) is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True


# --------------------------------------------------------------------------- the command


def _validate(args: argparse.Namespace, settings: Settings) -> tuple[list[str], Layout]:
    roles = list(dict.fromkeys(args.role or ROLES))
    if args.workers < 1:
        raise RunError(f"--workers must be at least 1, got {args.workers}")
    if args.gateways < 1:
        raise RunError(f"--gateways must be at least 1, got {args.gateways}")
    layout = Layout.from_settings(settings, args.gateways)
    wanted = [("supervisor", layout.supervisor)]
    for role in roles:
        if role == "gateway":
            wanted += [(f"gateway-{i}", p) for i, p in enumerate(layout.gateways)]
        else:
            wanted.append((role, getattr(layout, role)))
    taken = [f"{name} :{port}" for name, port in wanted if not _port_free(settings.http_host, port)]
    if taken:
        raise RunError(
            f"ports taken on {settings.http_host} ({', '.join(taken)}): is fieldmesh already "
            "running? choose another FIELDMESH_HTTP_PORT"
        )
    return roles, layout


def _argv_of(args: argparse.Namespace) -> list[str]:
    """The same command in the foreground (what --detach starts in the background)."""
    argv = ["-v"] * args.verbose + ["run"]
    for role in args.role or ():
        argv += ["--role", role]
    return [
        *argv,
        *("--workers", str(args.workers), "--gateways", str(args.gateways)),
        *("--dispatch-clock", args.dispatch_clock, "--stop-timeout-s", str(args.stop_timeout_s)),
    ]


def _detach(argv: list[str], settings: Settings, layout: Layout) -> int:
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = (logs / "run.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fieldmesh", *argv],
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # outlives this shell; `fieldmesh down` stops it
    )
    url = f"http://{_client_host(settings.http_host)}:{layout.supervisor}/health"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"fieldmesh run exited ({proc.returncode}); see {logs / 'run.log'}")
            return 1
        with contextlib.suppress(OSError, ValueError):
            import urllib.request

            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    print(
                        f"fieldmesh run: every role healthy (pid {proc.pid}); log {logs / 'run.log'}"
                    )
                    return 0
        time.sleep(0.5)
    print(f"fieldmesh run: not healthy after 180 s; see {url} and {logs / 'run.log'}")
    return 1


def start_detached(settings: Settings, *, workers: int = 2, verbose: int = 1) -> int:
    """`fieldmesh run --detach` for other commands (the demo); 0 once every role is healthy,
    also when a run of this state dir is already going."""
    args = argparse.Namespace(
        role=None,
        workers=workers,
        gateways=1,
        dispatch_clock="wall",
        stop_timeout_s=20.0,
        verbose=verbose,
        detach=True,
    )
    if running_pid(settings) is not None:
        print(f"fieldmesh run: already running (pid {running_pid(settings)})")
        return 0
    return cmd_run(args, settings)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from fieldmesh import services

    try:
        roles, layout = _validate(args, settings)
    except RunError as exc:
        print(f"fieldmesh run: bad setting: {exc}", file=sys.stderr)
        return 2
    if running_pid(settings) is not None:
        print(
            f"fieldmesh run: already running for {settings.state_dir} "
            f"(pid {running_pid(settings)}); `fieldmesh down` stops it",
            file=sys.stderr,
        )
        return 1
    try:
        services.ensure_up(settings)
    except services.ServiceError as exc:
        print(f"fieldmesh run: services failed: {exc}", file=sys.stderr)
        return 1
    if args.detach:
        return _detach(_argv_of(args), settings, layout)
    children = plan_children(
        settings, roles, layout, args.workers, args.dispatch_clock, args.verbose
    )
    host = _client_host(settings.http_host)
    print(f"fieldmesh run: {', '.join(c.name for c in children)}", flush=True)
    if "api" in roles:
        print(f"  console   {console_url(settings)}", flush=True)
        print(f"  API       http://{host}:{layout.api}/api/v1/openapi.json", flush=True)
    print(f"  health    http://{host}:{layout.supervisor}/health", flush=True)
    pid_file(settings).parent.mkdir(parents=True, exist_ok=True)
    pid_file(settings).write_text(str(os.getpid()))
    try:
        return asyncio.run(
            Supervisor(settings, children, layout, stop_timeout_s=args.stop_timeout_s).run()
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            pid_file(settings).unlink()


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run the product: API workers, gateways, ledger sealer, dispatcher and job "
        "worker, each as a supervised process (restarted when it dies)",
    )
    p.add_argument(
        "--role",
        action="append",
        choices=ROLES,
        help="run only this role (repeatable); default: every role",
    )
    p.add_argument("--workers", type=int, default=2, help="API processes sharing the port")
    p.add_argument("--gateways", type=int, default=1, help="gateway instances")
    p.add_argument(
        "--dispatch-clock",
        choices=("wall", "fleet"),
        default="wall",
        help="the dispatcher's now: wall clock, or the reps' phones' newest GPS fix "
        "(simulated fleets)",
    )
    p.add_argument("--stop-timeout-s", type=float, default=20.0)
    p.add_argument("--detach", action="store_true", help="run in the background")
    p.set_defaults(func=cmd_run)
