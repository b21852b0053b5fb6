"""Embedded mail servers: Dovecot (IMAP mailboxes, LMTP delivery) and an SMTP relay into it.

`fieldmesh up` starts both unless SMTP_URL points at a real server (then IMAP_URL names the
company's IMAP server, and nothing local runs). Layout under `state_dir/mail`:

    dovecot.conf   written here, edits are overwritten
    users          passwd-file: one line per mailbox (address, salted SHA-256 password)
    mail/<domain>/<local>/Maildir
    run/           Dovecot's base_dir (its sockets, the LMTP socket the relay delivers to)
    relay.sqlite   the relay's record of delivered (Message-ID, recipient) pairs

Dovecot runs unprivileged: as root it runs as Debian's `dovecot` user (every service, login
and mail process as that one user, like Dovecot's documented non-root mode), otherwise as
the current user; it listens on 127.0.0.1 only, IMAP without TLS (loopback) on
FIELDMESH_IMAP_PORT.

Why aiosmtpd delivering over LMTP rather than Postfix: Postfix is a system service with a
set-gid `postdrop`, a `master` that expects root, one queue per instance and a dozen
daemons; a second private instance on a free port per test session is fragile. The relay
here is one small process (`fieldmesh/mail_relay.py`) that answers SMTP on a free port and
hands each recipient to Dovecot's LMTP, which says per recipient whether the mailbox
exists. What it adds to a plain hand-off: recipients Dovecot refuses get a DSN (RFC 3464)
back to the envelope sender, as a real MTA would; and a message whose (Message-ID,
recipient) it has already delivered is acknowledged without a second delivery, so a sender
that re-sends after a crash never produces a duplicate.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

from engage import accounts
from engage.accounts import mail_dir
from fieldmesh import procs
from kernel.broker import file_lock
from kernel.settings import Settings

log = logging.getLogger(__name__)


class MailServiceError(RuntimeError):
    """The embedded mail servers could not be set up, started or stopped."""


_DOVECOT_CONF = """# fieldmesh embedded Dovecot (written by fieldmesh.svc_mail; edits are overwritten)
instance_name = fieldmesh-{key}
base_dir = {dir}/run
state_dir = {dir}/lib
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
first_valid_uid = {uid}
last_valid_uid = {uid}
mail_location = maildir:~/Maildir
mail_privileged_group =
mail_max_keyword_length = 50
mailbox_list_index = yes
imap_idle_notify_interval = 1 secs
protocol imap {{
  mail_max_userip_connections = 200
}}
lmtp_rcpt_check_quota = no
passdb {{
  driver = passwd-file
  args = scheme=SSHA256 username_format=%Lu {dir}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/mail/%Ld/%Ln
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  process_min_avail = 1
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
service imap {{
  process_limit = 512
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def lmtp_socket(settings: Settings) -> Path:
    return mail_dir(settings) / "run" / "lmtp"


def _owner() -> pwd.struct_passwd:
    try:
        return accounts.file_owner()
    except KeyError:
        raise MailServiceError(
            "running as root needs the `dovecot` user (Debian package dovecot-core)"
        ) from None


def _dovecot_bin() -> str:
    for cand in ("/usr/sbin/dovecot",):
        if Path(cand).exists():
            return cand
    raise MailServiceError(
        "dovecot not found: run `make deps` (deploy/install-debian.sh installs dovecot-imapd)"
    )


def _chown(path: Path, owner: pwd.struct_passwd) -> None:
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, owner.pw_uid, owner.pw_gid)
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.chown(
                    os.path.join(root, name), owner.pw_uid, owner.pw_gid, follow_symlinks=False
                )


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", _owner().pw_name, "--", *cmd]
    return cmd


def _dir(settings: Settings) -> Path:
    """The mail dir as Dovecot reaches it (as root, under /var/lib/fieldmesh when the
    `dovecot` user cannot enter the state dir: `procs.reachable_dir`)."""
    if os.geteuid() != 0:
        return mail_dir(settings)
    return procs.reachable_dir(settings.state_dir, "mail", _owner().pw_name)


def _conf(settings: Settings) -> Path:
    return _dir(settings) / "dovecot.conf"


def write_config(settings: Settings) -> Path:
    d = _dir(settings)
    for sub in ("run", "lib", "mail"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    owner = _owner()
    users = d / "users"
    if not users.exists():
        fd = os.open(users, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    key = hashlib.sha256(str(d).encode()).hexdigest()[:10]
    import grp

    conf = _conf(settings)
    conf.write_text(
        _DOVECOT_CONF.format(
            key=key,
            dir=d,
            user=owner.pw_name,
            group=grp.getgrgid(owner.pw_gid).gr_name,
            uid=owner.pw_uid,
            gid=owner.pw_gid,
            imap_port=settings.imap_port,
        )
    )
    _chown(d, owner)
    return conf


def add_mailbox(settings: Settings, address: str, password: str) -> None:
    add_mailboxes(settings, {address: password})


def add_mailboxes(settings: Settings, boxes: dict[str, str]) -> None:
    """Embedded mailboxes (address -> password); the passwd-file is engage's (accounts)."""
    if not (mail_dir(settings) / "users").exists():
        write_config(settings)
    accounts.add_mailboxes(settings, boxes)


def maildir_of(settings: Settings, address: str) -> Path:
    return accounts.maildir_of(settings, address)


# --------------------------------------------------------------------------- processes


def _dovecot_pid(settings: Settings) -> int | None:
    """This state dir's Dovecot master: its pid file's process, running this configuration."""
    return procs.pid_from_file(mail_dir(settings) / "run" / "master.pid", str(_conf(settings)))


def _relay_db(settings: Settings) -> Path:
    return mail_dir(settings) / "relay.sqlite"


def _relay_pid(settings: Settings) -> int | None:
    """This state dir's SMTP relay: its pid file's process, writing this state dir's record."""
    return procs.pid_from_file(mail_dir(settings) / "relay.pid", str(_relay_db(settings)))


def _port_open(port: int) -> bool:
    return procs.port_open(port)


def _wait(probe: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if probe():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise MailServiceError(f"{what} did not start within {timeout_s:.0f} s")


def dovecot_running(settings: Settings) -> bool:
    return _dovecot_pid(settings) is not None


def relay_running(settings: Settings) -> bool:
    return _relay_pid(settings) is not None


def dovecot_start(settings: Settings) -> None:
    if _dovecot_pid(settings) is not None:
        if not procs.port_open(settings.imap_port, timeout_s=2.0):
            log.warning(
                "the running Dovecot of %s listens elsewhere than FIELDMESH_IMAP_PORT=%d:"
                " `fieldmesh down` and `fieldmesh up` to apply the setting",
                mail_dir(settings),
                settings.imap_port,
            )
        return
    # a stray master of this state dir (an older version's overwritten pid file)
    procs.stop_service(mail_dir(settings) / "run" / "master.pid", str(_conf(settings)), "dovecot")
    conf = write_config(settings)
    if _port_open(settings.imap_port):
        raise MailServiceError(
            f"port {settings.imap_port} is taken by another program (FIELDMESH_IMAP_PORT)"
        )
    logf = mail_dir(settings) / "dovecot.start.log"
    with logf.open("ab") as out:
        result = subprocess.run(
            _as_owner([_dovecot_bin(), "-c", str(conf)]),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            check=False,
        )
    if result.returncode != 0:
        raise MailServiceError(f"dovecot failed to start: see {logf}")
    _wait(lambda: dovecot_running(settings) and _port_open(settings.imap_port), 20, "Dovecot")


def relay_start(settings: Settings) -> None:
    if _relay_pid(settings) is not None:
        if not procs.port_open(settings.smtp_port, timeout_s=2.0):
            log.warning(
                "the running SMTP relay listens elsewhere than FIELDMESH_SMTP_PORT=%d",
                settings.smtp_port,
            )
        return
    procs.stop_service(mail_dir(settings) / "relay.pid", str(_relay_db(settings)), "mail_relay")
    if _port_open(settings.smtp_port):
        raise MailServiceError(
            f"port {settings.smtp_port} is taken by another program (FIELDMESH_SMTP_PORT)"
        )
    d = mail_dir(settings)
    logf = d / "relay.log"
    with logf.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fieldmesh.mail_relay",
                "--port",
                str(settings.smtp_port),
                "--lmtp",
                str(lmtp_socket(settings)),
                "--db",
                str(_relay_db(settings)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
    (d / "relay.pid").write_text(f"{proc.pid}\n")
    _wait(
        lambda: (
            (relay_running(settings) and _port_open(settings.smtp_port)) or proc.poll() is not None
        ),
        20,
        "the SMTP relay",
    )
    if proc.poll() is not None:
        raise MailServiceError(f"the SMTP relay exited ({proc.returncode}): see {logf}")


def start(settings: Settings) -> None:
    with file_lock(mail_dir(settings) / "start.lock"):
        dovecot_start(settings)
        relay_start(settings)


def stop(settings: Settings) -> None:
    """Stop the relay and Dovecot of this state dir (and any stray one running its files)."""
    d = mail_dir(settings)
    with file_lock(d / "start.lock"):
        procs.stop_service(d / "relay.pid", str(_relay_db(settings)), "mail_relay", 10)
        procs.stop_service(d / "run" / "master.pid", str(_conf(settings)), "dovecot", 10)


def status_line(settings: Settings) -> tuple[bool, str]:
    if not settings.embedded_mail:
        return True, "external (SMTP_URL, IMAP_URL)"
    up = dovecot_running(settings) and relay_running(settings)
    return up, f"SMTP 127.0.0.1:{settings.smtp_port}, IMAP 127.0.0.1:{settings.imap_port}"
