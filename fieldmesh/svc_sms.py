"""Embedded SMS gateway: Kannel (bearerbox + smsbox) with its fake SMS centre.

`fieldmesh up` starts it unless SMS_GATEWAY_URL names a real gateway. Every port listens on
127.0.0.1 only (`admin-interface`, `smsbox-interface`, the fake SMSC's `host`/`our-host`,
`sendsms-interface`; without them bearerbox binds 0.0.0.0). Ports:
FIELDMESH_SMS_PORT is bearerbox's admin port, +1 its smsbox port, +2 smsbox's `sendsms`
HTTP interface (what engage sends through), +3 the fake SMS centre's port. Under
`state_dir/sms`: kannel.conf, the logs, the message store, and the phone network's two
ends: `fakesmsc` (Kannel's own test SMS centre) reads the lines appended to `inject.txt`
as messages from phones (MO: "FROM TO text WORDS...") and prints what Kannel sends to
phones (MT) into its log (`delivered` reads them). Inbound messages reach fieldmesh through smsbox's
get-url (`/engage/sms/inbound`, with the deployment's inbound key).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from engage.sms import SENDSMS_USER, inbound_key, sendsms_password, sms_dir
from fieldmesh import procs
from kernel.broker import file_lock
from kernel.settings import Settings

FAKESMSC = "/usr/lib/kannel/test/fakesmsc"


class SmsServiceError(RuntimeError):
    """The embedded Kannel could not be set up or started."""


_CONF = """# fieldmesh embedded Kannel (written by fieldmesh.svc_sms; edits are overwritten)
group = core
admin-port = {admin}
admin-interface = 127.0.0.1
admin-password = {admin_pw}
admin-allow-ip = "127.0.0.1"
smsbox-port = {smsbox}
smsbox-interface = 127.0.0.1
box-allow-ip = "127.0.0.1"
log-file = "{dir}/bearerbox.log"
log-level = 1
access-log = "{dir}/access.log"
store-type = file
store-location = "{dir}/store/kannel.store"
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
port = {fake}
host = 127.0.0.1
our-host = 127.0.0.1
connect-allow-ip = "127.0.0.1"

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox}
sendsms-port = {sendsms}
sendsms-interface = 127.0.0.1
log-file = "{dir}/smsbox.log"
log-level = 1

group = sendsms-user
username = {user}
password = {password}
max-messages = 10
concatenation = true

group = sms-service
keyword = default
catch-all = true
max-messages = 0
get-url = "{inbound}?from=%p&to=%P&text=%a&id=%I&key={key}"
"""


def _port_open(port: int) -> bool:
    return procs.port_open(port)


def _marker(d: Path, name: str) -> str:
    """What the command line of the state dir's `name` process contains: its configuration
    (bearerbox, smsbox) or the file the fake SMS centre reads (the shell running it)."""
    return str(d / ("inject.txt" if name == "fakesmsc" else "kannel.conf"))


def _pid(d: Path, name: str) -> int | None:
    """The state dir's `name` process: its pid file's, if it runs this state dir's files."""
    return procs.pid_from_file(d / f"{name}.pid", _marker(d, name))


def inbound_url(settings: Settings) -> str:
    return f"http://{settings.http_host}:{settings.http_port}/engage/sms/inbound"


def running(settings: Settings) -> bool:
    d = sms_dir(settings)
    return all(_pid(d, n) for n in ("bearerbox", "smsbox", "fakesmsc")) and _port_open(
        settings.sms_port + 2
    )


def _spawn(d: Path, name: str, cmd: list[str], *, shell: bool = False) -> None:
    with (d / f"{name}.out").open("ab") as out:
        proc = subprocess.Popen(
            cmd if not shell else ["/bin/sh", "-c", " ".join(cmd)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            cwd=d,
        )
    (d / f"{name}.pid").write_text(f"{proc.pid}\n")


def _wait(probe: object, timeout_s: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if probe():  # type: ignore[operator]
            return
        time.sleep(0.05)
    tail = " | ".join(_read(log).splitlines()[-3:]) if log is not None else ""
    raise SmsServiceError(f"{what} did not start within {timeout_s:.0f} s: {tail}")


def start(settings: Settings, *, inbound: str | None = None) -> None:
    """Start Kannel and the fake SMS centre; with another `inbound` URL than the running
    smsbox has, smsbox restarts with it (tests point it at their app's port)."""
    bearerbox, smsbox = (
        shutil.which("bearerbox") or "/usr/sbin/bearerbox",
        shutil.which("smsbox") or "/usr/sbin/smsbox",
    )
    if not Path(bearerbox).exists() or not Path(FAKESMSC).exists():
        raise SmsServiceError(
            "Kannel not found: run `make deps` (deploy/install-debian.sh installs kannel, kannel-extras)"
        )
    d = sms_dir(settings)
    (d / "store").mkdir(parents=True, exist_ok=True)
    with file_lock(d / "start.lock"):
        _start_locked(settings, d, bearerbox, smsbox, inbound)


def _start_locked(
    settings: Settings, d: Path, bearerbox: str, smsbox: str, inbound: str | None
) -> None:
    base = settings.sms_port
    if (
        inbound is None
        and _pid(d, "bearerbox") is not None
        and not _port_open(base + 2)
        and _pid(d, "smsbox") is not None
    ):
        return  # a Kannel of this state dir runs with other ports: leave it as it is
    conf = d / "kannel.conf"
    text = _CONF.format(
        admin=base,
        admin_pw=sendsms_password(settings),
        smsbox=base + 1,
        sendsms=base + 2,
        fake=base + 3,
        dir=d,
        user=SENDSMS_USER,
        password=sendsms_password(settings),
        inbound=inbound or inbound_url(settings),
        key=inbound_key(settings),
    )
    before_text = _read(conf)
    changed = before_text != text
    # bearerbox reads the core and smsc groups only when it starts (its listening addresses)
    core_changed = _core(before_text) != _core(text)
    conf.write_text(text)
    conf.chmod(0o600)
    if running(settings) and not changed:
        return
    if core_changed and _pid(d, "bearerbox") is not None:
        for name in ("fakesmsc", "smsbox", "bearerbox"):
            _stop(d, name)
    if _pid(d, "bearerbox") is None:
        _stop(d, "bearerbox")  # a stray one of this state dir (an overwritten pid file)
        if _port_open(base) or _port_open(base + 1) or _port_open(base + 3):
            raise SmsServiceError(f"ports {base}-{base + 3} are taken (FIELDMESH_SMS_PORT)")
        _spawn(d, "bearerbox", [bearerbox, str(conf)])
        _wait(
            lambda: _port_open(base + 1) and _port_open(base + 3),
            60,
            "Kannel's bearerbox",
            d / "bearerbox.log",
        )
    if changed:
        _stop(d, "smsbox")
    if _pid(d, "smsbox") is None:
        _stop(d, "smsbox")
        _spawn(d, "smsbox", [smsbox, str(conf)])
        _wait(lambda: _port_open(base + 2), 60, "Kannel's smsbox", d / "smsbox.log")
    if _pid(d, "fakesmsc") is None:
        _stop(d, "fakesmsc")
        (d / "inject.txt").touch()
        before = _read(d / "bearerbox.log").count("Fakesmsc client connected")
        # `tail -f` keeps fakesmsc's stdin open; each appended line is one message from a phone
        _spawn(
            d,
            "fakesmsc",
            [
                f"exec tail -n 0 -F {shlex.quote(str(d / 'inject.txt'))} |",
                FAKESMSC,
                "-H 127.0.0.1",
                f"-r {base + 3}",
                "> delivered.log 2> fakesmsc.log",
            ],
            shell=True,
        )
        _wait(
            lambda: _read(d / "bearerbox.log").count("Fakesmsc client connected") > before,
            10,
            "the fake SMS centre",
        )


def _core(conf_text: str) -> str:
    return conf_text.split("group = smsbox", 1)[0]


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def inject(settings: Settings, sender: str, receiver: str, text: str) -> None:
    """A message from a phone into the fake SMS centre (tests, benchmarks, the demo)."""
    line = f"{sender} {receiver} text {' '.join(text.split())}\n"
    with (sms_dir(settings) / "inject.txt").open("a") as fh:
        fh.write(line)


def delivered(settings: Settings) -> list[str]:
    """What Kannel sent to phones ("FROM TO text WORDS"), as the fake SMS centre logged it."""
    log = _read(sms_dir(settings) / "fakesmsc.log")
    return re.findall(r"Got message \d+: <(.*)>", log)


def _stop(d: Path, name: str) -> None:
    """Stop the state dir's `name` process with its group (and any stray one of it)."""
    procs.stop_service(d / f"{name}.pid", _marker(d, name), name, 10)


def stop(settings: Settings) -> None:
    d = sms_dir(settings)
    with file_lock(d / "start.lock"):
        for name in ("fakesmsc", "smsbox", "bearerbox"):
            _stop(d, name)


def status_line(settings: Settings) -> tuple[bool, str]:
    if not settings.embedded_sms:
        return True, "external (SMS_GATEWAY_URL)"
    return running(settings), f"Kannel sendsms 127.0.0.1:{settings.sms_port + 2}"
