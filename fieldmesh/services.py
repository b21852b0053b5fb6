"""Embedded local services: a project-owned PostgreSQL cluster and a Mosquitto broker.

`fieldmesh up` calls `ensure_up`; integration tests call the same function. Both services
listen on 127.0.0.1 only, keep their state under `settings.state_dir`, and are left alone
when DATABASE_URL / MQTT_URL point to external servers.

PostgreSQL refuses to run as root, so as root the cluster runs as the unprivileged
`postgres` user that Debian's package creates.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from fieldmesh import procs, svc_caldav, svc_mail, svc_sms
from kernel import broker
from kernel.broker import file_lock
from kernel.settings import Settings

log = logging.getLogger(__name__)

PG_SUPERUSER = "fieldmesh"


class ServiceError(RuntimeError):
    """An embedded service could not be installed, started or stopped."""


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    name: str
    running: bool
    detail: str


# --------------------------------------------------------------------------- helpers


def _port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.3) -> bool:
    return procs.port_open(port, host, timeout_s)


def _wait_port(port: int, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.05)
    raise ServiceError(f"{what} did not open port {port} within {timeout_s:.0f} s")


def _is_root() -> bool:
    return os.geteuid() == 0


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bindir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    for cand in reversed(candidates):
        if (cand / "initdb").exists():
            return cand
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ServiceError(
        "PostgreSQL server binaries not found: run `make deps` (deploy/install-debian.sh)"
    )


def _pg_owner() -> pwd.struct_passwd:
    if _is_root():
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            raise ServiceError(
                "running as root needs the `postgres` user (Debian package postgresql)"
            ) from None
    return pwd.getpwuid(os.geteuid())


def _pg_root(settings: Settings) -> Path:
    """The cluster's directory; as root it must be reachable by `postgres` (under
    /var/lib/fieldmesh when the state dir is not: `procs.reachable_dir`)."""
    if not _is_root():
        return settings.state_dir / "pg"
    return procs.reachable_dir(settings.state_dir, "pg", _pg_owner().pw_name)


def _run_as_pg(cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    owner = _pg_owner()
    if _is_root():
        cmd = ["runuser", "-u", owner.pw_name, "--", *cmd]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise ServiceError(
            f"{' '.join(cmd)} failed: {result.stderr.strip() or result.stdout.strip()}"
        )
    return result


def _chown_tree(path: Path, owner: pwd.struct_passwd) -> None:
    if not _is_root():
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, owner.pw_uid, owner.pw_gid)
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.chown(
                    os.path.join(root, name), owner.pw_uid, owner.pw_gid, follow_symlinks=False
                )


_PG_CONF = """
# fieldmesh embedded cluster (written by fieldmesh.services; edits are overwritten)
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{run}'
max_connections = 200
shared_buffers = 512MB
work_mem = 16MB
maintenance_work_mem = 256MB
max_wal_size = 4GB
checkpoint_timeout = 15min
wal_compression = on
synchronous_commit = on
fsync = on
jit = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
timezone = 'UTC'
"""


def pg_start(settings: Settings) -> None:
    root = _pg_root(settings)
    data, run, logf = root / "data", root / "run", root / "postgres.log"
    owner = _pg_owner()
    bindir = _pg_bindir()
    root.mkdir(parents=True, exist_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    if not (data / "PG_VERSION").exists():
        log.info("initdb into %s", data)
        data.mkdir(parents=True, exist_ok=True)
        _chown_tree(root, owner)
        os.chmod(data, 0o700)
        _run_as_pg(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                PG_SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )
    (data / "fieldmesh.conf").write_text(_PG_CONF.format(port=settings.pg_port, run=run))
    conf = data / "postgresql.conf"
    include = "include_if_exists = 'fieldmesh.conf'"
    if include not in conf.read_text():
        with conf.open("a") as fh:
            fh.write(f"\n{include}\n")
    _chown_tree(root, owner)
    if pg_running(settings):
        return
    if _port_open(settings.pg_port):
        raise ServiceError(
            f"port {settings.pg_port} is taken by another program (FIELDMESH_PG_PORT)"
        )
    # A leftover pid file from a killed postmaster makes pg_ctl refuse to start.
    pidfile = data / "postmaster.pid"
    if pidfile.exists():
        with contextlib.suppress(ValueError, OSError):
            pid = int(pidfile.read_text().split()[0])
            if not _pid_alive(pid):
                pidfile.unlink()
    _run_as_pg(
        [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(logf), "-w", "-t", "120", "start"]
    )
    _wait_port(settings.pg_port, 60, "PostgreSQL")
    _ensure_database(settings, settings.db_name)


def pg_stop(settings: Settings, mode: str = "fast") -> None:
    root = _pg_root(settings)
    data = root / "data"
    if not (data / "postmaster.pid").exists():
        return
    _run_as_pg(
        [str(_pg_bindir() / "pg_ctl"), "-D", str(data), "-m", mode, "-w", "-t", "120", "stop"],
        check=False,
    )


def pg_running(settings: Settings) -> bool:
    root = _pg_root(settings)
    pidfile = root / "data" / "postmaster.pid"
    if not pidfile.exists():
        return False
    try:
        pid = int(pidfile.read_text().split()[0])
    except (ValueError, OSError):
        return False
    return _pid_alive(pid) and _port_open(settings.pg_port)


def _ensure_database(settings: Settings, dbname: str) -> None:
    import psycopg  # adapter import kept local: `fieldmesh --help` must not need a driver

    with psycopg.connect(settings.dsn_for("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{dbname}"')


def create_database(settings: Settings, dbname: str) -> str:
    """Create an empty database on the same server and return its DSN (tests use their own)."""
    _ensure_database(settings, dbname)
    return settings.dsn_for(dbname)


def drop_database(settings: Settings, dbname: str) -> None:
    import psycopg

    with psycopg.connect(settings.dsn_for("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


# --------------------------------------------------------------------------- replica

_REPLICA_CONF = """
# fieldmesh embedded streaming replica (written by fieldmesh.services)
port = {port}
unix_socket_directories = '{run}'
hot_standby = on
hot_standby_feedback = on
# report replay progress at least every second (pg_stat_replication.replay_lag and the
# primary's view of the standby are otherwise up to 10 s behind once traffic pauses)
wal_receiver_status_interval = 1s
"""


def _replica_root(settings: Settings) -> Path:
    return _pg_root(settings).parent / "pg-replica"


def replica_dsn(settings: Settings) -> str | None:
    """Where lag-tolerant reads go: DATABASE_REPLICA_URL, else the embedded replica
    `fieldmesh up --replica` made (for the embedded primary), else none."""
    if settings.database_replica_url is not None:
        return settings.database_replica_url
    if settings.embedded_db and (_replica_root(settings) / "data" / "standby.signal").exists():
        return f"postgresql://{PG_SUPERUSER}@127.0.0.1:{settings.replica_port}/{settings.db_name}"
    return None


def replica_start(settings: Settings) -> None:
    """A second cluster on FIELDMESH_REPLICA_PORT, cloned from the embedded primary with
    pg_basebackup and following it by streaming replication (the primary's defaults --
    wal_level replica, max_wal_senders 10, trust for replication on 127.0.0.1 -- allow it)."""
    if not settings.embedded_db:
        raise ServiceError("--replica needs the embedded PostgreSQL (DATABASE_URL is external)")
    if settings.replica_port == settings.pg_port:
        raise ServiceError("FIELDMESH_REPLICA_PORT must differ from FIELDMESH_PG_PORT")
    root = _replica_root(settings)
    data, run, logf = root / "data", root / "run", root / "postgres.log"
    owner = _pg_owner()
    bindir = _pg_bindir()
    root.mkdir(parents=True, exist_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    _chown_tree(root, owner)
    if not (data / "standby.signal").exists():
        if data.exists():
            shutil.rmtree(data)  # a half-made clone: start over
        log.info("pg_basebackup into %s", data)
        _run_as_pg(
            [
                str(bindir / "pg_basebackup"),
                *("-h", "127.0.0.1", "-p", str(settings.pg_port), "-U", PG_SUPERUSER),
                *("-D", str(data), "-R", "-X", "stream", "-c", "fast", "--no-sync"),
            ]
        )
    # the clone carries the primary's fieldmesh.conf; the replica's settings follow it
    conf = data / "postgresql.conf"
    include = "include_if_exists = 'fieldmesh-replica.conf'"
    if include not in conf.read_text():
        with conf.open("a") as fh:
            fh.write(f"\n{include}\n")
    (data / "fieldmesh-replica.conf").write_text(
        _REPLICA_CONF.format(port=settings.replica_port, run=run)
    )
    _chown_tree(root, owner)
    if replica_running(settings):
        prioritise_replication(settings)  # a WAL sender of a reconnection starts unfavoured
        return
    if _port_open(settings.replica_port):
        raise ServiceError(
            f"port {settings.replica_port} is taken by another program (FIELDMESH_REPLICA_PORT)"
        )
    pidfile = data / "postmaster.pid"
    if pidfile.exists():
        with contextlib.suppress(ValueError, OSError):
            if not _pid_alive(int(pidfile.read_text().split()[0])):
                pidfile.unlink()
    _run_as_pg(
        [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(logf), "-w", "-t", "120", "start"]
    )
    _wait_port(settings.replica_port, 60, "PostgreSQL replica")
    prioritise_replication(settings)


# How much the replica's replay chain is favoured by the scheduler (see prioritise_replication)
REPLICATION_NICE = -10


def _children(ppid: int) -> list[tuple[int, str]]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == ppid:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                out.append((int(entry), cmd))
    return out


def prioritise_replication(settings: Settings) -> bool:
    """Let the embedded replica's replay keep up on a busy host: the scheduler favours the
    processes a change passes through on its way to the replica (the primary's WAL
    sender, the replica's WAL receiver and its startup process, which replays).

    Replay is one process and needs little CPU (about 1.3 us per stored point), but it
    runs once per WAL flush, three hops after the commit, and on a host whose cores are
    taken (the gateways, the primary's COPY backends, the broker, other work) each hop
    waited in the run queue: bench-scale saw the startup process wait 6 ms for every 1
    ms it ran, and replica staleness of 0.3-2.2 s where the replay work itself takes a few
    ms. Every PostgreSQL process runs in a session of its own (setsid at fork), which
    Linux (sched_autogroup) schedules as a group against all other sessions, where a
    process's own nice value counts for nothing: so the three get REPLICATION_NICE both
    as their autogroup's nice and as their own (for kernels without autogroups). Only
    root may raise a priority: otherwise nothing changes and False is returned."""
    import psycopg

    if not _is_root():
        return False
    pidfile = _replica_root(settings) / "data" / "postmaster.pid"
    try:
        postmaster = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    deadline = time.monotonic() + 10
    with psycopg.connect(settings.dsn_for("postgres"), autocommit=True) as conn:
        while True:  # until the replica's receiver is connected to its sender
            pids = [
                p for p, cmd in _children(postmaster) if "walreceiver" in cmd or "startup" in cmd
            ]
            senders = [int(r[0]) for r in conn.execute("SELECT pid FROM pg_stat_replication")]
            if (len(pids) == 2 and senders) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    for pid in pids + senders:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, REPLICATION_NICE)
        with contextlib.suppress(OSError):  # the process's own session: its own autogroup
            Path(f"/proc/{pid}/autogroup").write_text(str(REPLICATION_NICE))
    return bool(senders)


def replica_stop(settings: Settings, mode: str = "fast") -> None:
    data = _replica_root(settings) / "data"
    if not (data / "postmaster.pid").exists():
        return
    _run_as_pg(
        [str(_pg_bindir() / "pg_ctl"), "-D", str(data), "-m", mode, "-w", "-t", "120", "stop"],
        check=False,
    )


def replica_running(settings: Settings) -> bool:
    pidfile = _replica_root(settings) / "data" / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (ValueError, OSError):
        return False
    return _pid_alive(pid) and _port_open(settings.replica_port)


# --------------------------------------------------------------------------- Mosquitto


def _mqtt_dir(settings: Settings) -> Path:
    return settings.state_dir / "mqtt"


def _pid_alive(pid: int) -> bool:
    return procs.alive(pid)


DYNSEC_PLUGIN_PATHS = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
)

_MOSQUITTO_CONF = """# fieldmesh embedded broker (written by fieldmesh.services; edits are overwritten)
per_listener_settings false
allow_anonymous false
# Accounts, client-id binding and every ACL live in the dynamic-security plugin
# (kernel/broker.py): devices are added while the broker runs, without the reload of a
# password file that disconnects every client (2.0.11). No acl_file: in 2.0.11 it grants
# every subscription and cannot substitute what the plugin's ACLs would need.
plugin {plugin}
plugin_opt_config_file {dir}/dynsec.json
listener {listener}
max_connections {max_connections}
{tls}{ws}persistence true
persistence_location {dir}/data/
autosave_interval 5
# Quotas (all global in 2.0.11; there is no per-client publish rate limit: the gateway
# guards the rate per device). A larger packet disconnects the client; a larger payload
# is refused with a PUBACK error.
max_packet_size {max_packet_size}
message_size_limit {message_size_limit}
max_keepalive {max_keepalive}
max_inflight_messages {max_inflight}
# Queues stay unbounded: the limit cannot be set per account, and the gateway's
# persistent session must not drop QoS 1 messages while it is down. A device can only
# queue for itself (its own commands and receipts).
max_queued_messages 0
max_queued_bytes 0
log_dest file {dir}/mosquitto.log
log_type error
log_type warning
log_type notice
pid_file {dir}/mosquitto.pid
user {user}
"""

# MQTT over WebSockets for the reps' phones (phone/: the PWA's GPS). Debian's 2.0.11 binds
# it to every interface whatever address is given; the same accounts and ACLs apply.
_WS_LISTENER = """listener {port} 127.0.0.1
protocol websockets
max_connections {max_connections}
"""

# The same in a container: every interface of the pod (a TLS proxy or load balancer in
# front gives the phones wss://, FIELDMESH_MQTT_WS_URL).
_WS_LISTENER_CONTAINER = """listener {port}
protocol websockets
max_connections {max_connections}
"""

_TLS_LISTENER = """listener {port} 127.0.0.1
max_connections {max_connections}
cafile {ca}
certfile {cert}
keyfile {key}
tls_version tlsv1.2
"""

# Broker quotas. The packet limit leaves room for the headers around the largest payload;
# the in-flight window is the gateway's (its Receive Maximum), and devices use 20.
MAX_PACKET_SIZE = 1_114_112
MESSAGE_SIZE_LIMIT = 1_048_576
MAX_KEEPALIVE_S = 300
MAX_INFLIGHT = 1000
MAX_CONNECTIONS = 20_000


def _mosquitto_bin() -> str:
    for cand in ("/usr/sbin/mosquitto", shutil.which("mosquitto")):
        if cand and Path(cand).exists():
            return cand
    raise ServiceError("mosquitto not found: run `make deps` (deploy/install-debian.sh)")


def _dynsec_plugin() -> str:
    for cand in DYNSEC_PLUGIN_PATHS:
        if Path(cand).exists():
            return cand
    raise ServiceError("mosquitto's dynamic-security plugin not found (Debian package mosquitto)")


def _write_broker_files(settings: Settings, *, running: bool) -> Path:
    d = _mqtt_dir(settings)
    (d / "data").mkdir(parents=True, exist_ok=True)
    user = pwd.getpwuid(os.geteuid()).pw_name
    tls = ""
    if settings.mqtt_tls_port is not None:
        from fieldmesh.tls import ensure_broker_certs

        certs = ensure_broker_certs(settings)
        tls = _TLS_LISTENER.format(
            port=settings.mqtt_tls_port,
            max_connections=MAX_CONNECTIONS,
            ca=certs.ca,
            cert=certs.cert,
            key=certs.key,
        )
    conf = d / "mosquitto.conf"
    before = conf.read_text() if conf.exists() else None
    text = _MOSQUITTO_CONF.format(
        dir=d,
        listener=f"{settings.mqtt_port} 127.0.0.1",
        user=user,
        plugin=_dynsec_plugin(),
        tls=tls,
        ws=_WS_LISTENER.format(port=settings.mqtt_ws_listen_port, max_connections=MAX_CONNECTIONS),
        max_connections=MAX_CONNECTIONS,
        max_packet_size=MAX_PACKET_SIZE,
        message_size_limit=MESSAGE_SIZE_LIMIT,
        max_keepalive=MAX_KEEPALIVE_S,
        max_inflight=MAX_INFLIGHT,
    )
    conf.write_text(text)
    if running and before is not None and before != text:
        # E.g. a broker started by an earlier version still runs its static ACL file, or
        # one started with --tls runs a listener these settings do not have.
        log.warning(
            "the running broker was started with another configuration than these "
            "settings give: `fieldmesh down` and `fieldmesh up` to apply %s",
            conf,
        )
    if not running:
        (d / "acl").unlink(missing_ok=True)  # earlier versions' static ACL file
    dynsec = d / "dynsec.json"
    if not dynsec.exists():
        fd = os.open(dynsec, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(broker.initial_dynsec(settings), fh, indent=2)
    elif not running:
        # The running plugin owns the file and saves every change to it; while the broker
        # is stopped, bring accounts from earlier versions to the current roles.
        doc = broker.normalise_dynsec(settings, json.loads(dynsec.read_text()))
        tmp = dynsec.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2)
        os.replace(tmp, dynsec)
    return conf


def write_broker_config(
    settings: Settings,
    out: Path,
    *,
    listener: str,
    plugin: str,
    user: str,
    gateway_password: str | None = None,
    ws_listener: int | None = None,
) -> Path:
    """The embedded broker's mosquitto.conf and initial dynsec.json with a container's
    paths and listener (`fieldmesh broker-config`: deploy/compose.yaml, the Kubernetes init
    container). The gateway's password is MQTT_URL's when given; an existing dynsec.json
    is the running plugin's and is kept."""
    (out / "data").mkdir(parents=True, exist_ok=True)
    conf = out / "mosquitto.conf"
    conf.write_text(
        _MOSQUITTO_CONF.format(
            dir=out,
            listener=listener,
            user=user,
            plugin=plugin,
            tls="",
            ws=(
                _WS_LISTENER_CONTAINER.format(port=ws_listener, max_connections=MAX_CONNECTIONS)
                if ws_listener is not None
                else ""
            ),
            max_connections=MAX_CONNECTIONS,
            max_packet_size=MAX_PACKET_SIZE,
            message_size_limit=MESSAGE_SIZE_LIMIT,
            max_keepalive=MAX_KEEPALIVE_S,
            max_inflight=MAX_INFLIGHT,
        )
    )
    dynsec = out / "dynsec.json"
    if not dynsec.exists():
        doc = broker.initial_dynsec(settings)
        if gateway_password is not None:
            for client in doc["clients"]:
                if client["username"] == settings.gateway_user:
                    client.update(broker._dynsec_hash(gateway_password))
        fd = os.open(dynsec, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2)
    return conf


def _mqtt_conf(settings: Settings) -> Path:
    return _mqtt_dir(settings) / "mosquitto.conf"


def _mqtt_pid(settings: Settings) -> int | None:
    """This state dir's broker: the pid file's process, if it runs this state dir's
    configuration (identified so, never by a port probe: see fieldmesh/procs.py)."""
    return procs.pid_from_file(_mqtt_dir(settings) / "mosquitto.pid", str(_mqtt_conf(settings)))


def mqtt_running(settings: Settings) -> bool:
    return _mqtt_pid(settings) is not None


def mqtt_start(settings: Settings) -> None:
    with file_lock(_mqtt_dir(settings) / "start.lock"):
        _mqtt_start_locked(settings)


def _mqtt_start_locked(settings: Settings) -> None:
    running = mqtt_running(settings)
    conf = _write_broker_files(settings, running=running)
    if running:
        if settings.mqtt_tls_port is not None and not _port_open(
            settings.mqtt_tls_port, timeout_s=2.0
        ):
            raise ServiceError(
                "the broker runs without its TLS listener: `fieldmesh down` first, then up --tls"
            )
        return
    # stray brokers of this state dir (an older version's overwritten pid file)
    procs.stop_service(_mqtt_dir(settings) / "mosquitto.pid", str(conf), "mosquitto")
    if _port_open(settings.mqtt_port):
        raise ServiceError(
            f"port {settings.mqtt_port} is taken by another program (FIELDMESH_MQTT_PORT)"
        )
    result = subprocess.run(
        [_mosquitto_bin(), "-d", "-c", str(conf)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ServiceError(f"mosquitto failed to start: {result.stderr.strip()}")
    _wait_port(settings.mqtt_port, 20, "Mosquitto")
    _wait_port(settings.mqtt_ws_listen_port, 20, "Mosquitto (WebSockets)")
    if settings.mqtt_tls_port is not None:
        _wait_port(settings.mqtt_tls_port, 20, "Mosquitto (TLS)")


def mqtt_stop(settings: Settings, sig: signal.Signals = signal.SIGTERM) -> None:
    """Stop the state dir's broker (and any other one running its configuration); with
    another `sig` than SIGTERM (tests kill it), only send that to the pid file's broker."""
    if sig != signal.SIGTERM:
        pid = _mqtt_pid(settings)
        if pid is None:
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + 20
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        return
    with file_lock(_mqtt_dir(settings) / "start.lock"):
        procs.stop_service(
            _mqtt_dir(settings) / "mosquitto.pid", str(_mqtt_conf(settings)), "mosquitto"
        )


# --------------------------------------------------------------------------- together


def ensure_up(settings: Settings, *, migrate: bool = True) -> None:
    """Start whatever embedded service is not running, then bring the schema up to date."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(settings.state_dir / "services.lock"):
        if settings.embedded_db:
            pg_start(settings)
        if settings.embedded_mqtt:
            mqtt_start(settings)
        if settings.embedded_caldav:
            svc_caldav.start(settings)
        if settings.embedded_mail:
            svc_mail.start(settings)
        if settings.embedded_sms:
            svc_sms.start(settings)
    if migrate:
        from fieldmesh.migrate import upgrade

        upgrade(settings.dsn)


def stop_at_exit_if_started(settings: Settings) -> None:
    """For a command that starts the embedded services only to use them (the benchmarks):
    those it finds stopped now are stopped again when it exits; services the user already
    had running are left alone."""
    had_db = not settings.embedded_db or pg_running(settings)
    had_mqtt = not settings.embedded_mqtt or mqtt_running(settings)
    had_replica = replica_running(settings)
    had_caldav = not settings.embedded_caldav or svc_caldav.running(settings)
    had_mail = not settings.embedded_mail or svc_mail.dovecot_running(settings)
    had_sms = not settings.embedded_sms or svc_sms.running(settings)

    def stop() -> None:
        if not had_caldav:
            svc_caldav.stop(settings)
        if not had_sms:
            svc_sms.stop(settings)
        if not had_mail:
            svc_mail.stop(settings)
        if not had_replica:
            replica_stop(settings)
        if not had_mqtt:
            mqtt_stop(settings)
        if not had_db:
            pg_stop(settings)

    atexit.register(stop)


def down(settings: Settings) -> None:
    with file_lock(settings.state_dir / "services.lock"):
        if settings.embedded_caldav:
            svc_caldav.stop(settings)
        if settings.embedded_sms:
            svc_sms.stop(settings)
        if settings.embedded_mail:
            svc_mail.stop(settings)
        if settings.embedded_mqtt:
            mqtt_stop(settings)
        if settings.embedded_db:
            replica_stop(settings)
            pg_stop(settings)


def status(settings: Settings) -> list[ServiceStatus]:
    out: list[ServiceStatus] = []
    if settings.embedded_db:
        out.append(
            ServiceStatus("postgresql", pg_running(settings), f"127.0.0.1:{settings.pg_port}")
        )
        if (_replica_root(settings) / "data" / "standby.signal").exists():
            out.append(
                ServiceStatus(
                    "replica", replica_running(settings), f"127.0.0.1:{settings.replica_port}"
                )
            )
    else:
        out.append(ServiceStatus("postgresql", True, "external (DATABASE_URL)"))
    if settings.embedded_mqtt:
        where = f"127.0.0.1:{settings.mqtt_port}, ws :{settings.mqtt_ws_listen_port}"
        if settings.mqtt_tls_port is not None:
            where += f", TLS :{settings.mqtt_tls_port}"
        out.append(ServiceStatus("mosquitto", mqtt_running(settings), where))
    else:
        out.append(ServiceStatus("mosquitto", True, "external (MQTT_URL)"))
    if settings.embedded_caldav:
        out.append(
            ServiceStatus("caldav", svc_caldav.running(settings), svc_caldav.detail(settings))
        )
    else:
        out.append(ServiceStatus("caldav", True, "external (CALDAV_URL)"))
    out.append(ServiceStatus("mail", *svc_mail.status_line(settings)))
    out.append(ServiceStatus("sms", *svc_sms.status_line(settings)))
    return out
