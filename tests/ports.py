"""Free loopback ports for test sessions that run side by side (pytest-xdist workers).

A port found free by binding port 0 is free only until someone else binds it: two workers
asking at the same moment, or one worker's service that listens on several consecutive
ports (Kannel takes FIELDMESH_SMS_PORT to +3), could pick the same one. Every session
therefore records the ports it took in a registry shared by the machine's test sessions
(a file, under a lock, entries of dead sessions dropped), and never takes one listed there.

Ports come from below the kernel's ephemeral range: a port handed out there can be taken,
before the service binds it, as the local port of any outgoing connection (a loaded
machine makes thousands), which made a broker's later listener fail to bind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

_REGISTRY = Path(tempfile.gettempdir()) / "fieldmesh-test-ports.json"
_LOWEST = 24000  # below: the well-known services and manual runs' ranges


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_HIGHEST = _ephemeral_low() - 1
_rng = random.Random()


def _candidate() -> socket.socket | None:
    """A socket bound to a port below the ephemeral range (any port if there is no room)."""
    if _HIGHEST - _LOWEST < 1000:
        return _bind(0)
    return _bind(_rng.randint(_LOWEST, _HIGHEST))


@contextlib.contextmanager
def _registry() -> Iterator[dict[str, int]]:
    """The registry (port -> pid of the session that took it), locked, live entries only."""
    with open(f"{_REGISTRY}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            taken = {str(k): int(v) for k, v in json.loads(_REGISTRY.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            taken = {}
        live = {port: pid for port, pid in taken.items() if _alive(pid)}
        yield live
        tmp = _REGISTRY.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(live))
        tmp.replace(_REGISTRY)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _bind(port: int) -> socket.socket | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    return s


def reserve(singles: int, blocks: tuple[int, ...] = ()) -> tuple[list[int], list[int]]:
    """`singles` free ports and, for each size in `blocks`, the first port of that many
    consecutive free ports; all distinct, all recorded for this process."""
    held: list[socket.socket] = []
    out_singles: list[int] = []
    out_blocks: list[int] = []
    try:
        with _registry() as taken:

            def usable(port: int) -> bool:
                return str(port) not in taken and all(s.getsockname()[1] != port for s in held)

            while len(out_singles) < singles:
                s = _candidate()
                if s is None:
                    continue
                port = int(s.getsockname()[1])
                if usable(port):
                    held.append(s)
                    out_singles.append(port)
                else:
                    s.close()
            for size in blocks:
                for _ in range(1000):
                    first = _candidate()
                    if first is None:
                        continue
                    base = int(first.getsockname()[1])
                    group = [first]
                    for port in range(base + 1, base + size):
                        s = _bind(port) if port < 65536 and usable(port) else None
                        if s is None:
                            break
                        group.append(s)
                    if len(group) == size and usable(base):
                        held.extend(group)
                        out_blocks.append(base)
                        break
                    for s in group:
                        s.close()
                else:
                    raise RuntimeError(f"no {size} consecutive free ports on 127.0.0.1")
            me = os.getpid()
            for port in out_singles:
                taken[str(port)] = me
            for base, size in zip(out_blocks, blocks, strict=True):
                for port in range(base, base + size):
                    taken[str(port)] = me
    finally:
        for s in held:
            s.close()
    return out_singles, out_blocks


def free_port() -> int:
    """One free port, not one a test session of this machine has reserved."""
    (port,), _ = reserve(1)
    return port


def service_ports() -> dict[str, int]:
    """Ports for every embedded service `fieldmesh up` starts, as Settings overrides."""
    (pg, mqtt, mqtt_ws, caldav, smtp, imap), (sms,) = reserve(6, blocks=(4,))
    return {
        "pg_port": pg,
        "mqtt_port": mqtt,
        "mqtt_ws_port": mqtt_ws,
        "caldav_port": caldav,
        "smtp_port": smtp,
        "imap_port": imap,
        "sms_port": sms,  # Kannel listens on sms_port .. sms_port + 3
    }
