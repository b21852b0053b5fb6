"""Settings: read once in the entry point from the environment and an optional TOML file.

Every setting has a working local default; a bad value raises SettingsError naming the
setting, and the CLI turns that into exit code 2.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """A setting has a value that cannot work; the message names the setting."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Documented configuration keys (env var in brackets)."""

    state_dir: Path = field(default_factory=lambda: PROJECT_ROOT / ".state")  # FIELDMESH_STATE_DIR
    tenant: str = "acme"  # FIELDMESH_TENANT: the MQTT topic prefix fm/v1/{tenant}/...
    pg_port: int = 55432  # FIELDMESH_PG_PORT: embedded PostgreSQL, 127.0.0.1 only
    mqtt_port: int = 51883  # FIELDMESH_MQTT_PORT: embedded Mosquitto, 127.0.0.1 only
    # FIELDMESH_MQTT_TLS_PORT: also a TLS listener (project CA under state_dir/tls); None: none
    mqtt_tls_port: int | None = None
    # FIELDMESH_MQTT_WS_PORT: the embedded broker's MQTT-over-WebSockets listener, where the
    # reps' phones (the PWA) publish GPS with their own device accounts; None: MQTT port + 2
    mqtt_ws_port: int | None = None
    # FIELDMESH_MQTT_WS_URL: ws(s)://host:port/path phones use instead (a TLS proxy, an
    # external broker); None: ws://<the page's host>:<mqtt_ws_port>
    mqtt_ws_url: str | None = None
    database_url: str | None = None  # DATABASE_URL: an external server instead of the embedded one
    mqtt_url: str | None = None  # MQTT_URL: mqtt://user:pass@host:port of an external broker
    http_host: str = "127.0.0.1"  # FIELDMESH_HTTP_HOST
    http_port: int = 8080  # FIELDMESH_HTTP_PORT: the API, console and gateway metrics
    gateway_user: str = "gateway"  # FIELDMESH_GATEWAY_USER: broker account of the gateway
    evm_rpc_url: str | None = None  # EVM_RPC_URL: None means the in-process eth-tester chain
    # FIELDMESH_CONSOLE_TILE_URL: the web console's map tiles, http(s)://host/{z}/{x}/{y}.png;
    # None draws vector layers over a plain background (no tile server needed)
    console_tile_url: str | None = None
    # FIELDMESH_WEBHOOK_ALLOW: comma-separated networks (e.g. 127.0.0.1/32,10.20.0.0/16) that
    # outbound webhooks may reach although they are loopback, private, link-local, CGNAT or
    # reserved; empty (the default) lets webhooks reach public addresses only
    webhook_allow: tuple[IPNetwork, ...] = ()
    # FIELDMESH_PUSH_ALLOW: networks Web Push endpoints may be on although not public (a
    # local push service, e.g. 127.0.0.1/32), also over plain http; empty: public https only
    push_allow: tuple[IPNetwork, ...] = ()
    # FIELDMESH_SECURE_COOKIES: mark the session cookie Secure also when a TLS proxy in front
    # speaks plain HTTP to the API (over direct TLS it is always Secure)
    secure_cookies: bool = False
    # FIELDMESH_INSTANCE: this host's or pod's stable name; gateway i's MQTT client id ends
    # in {instance}-{i}, so gateways on several hosts never share a broker session
    instance: str = "run"
    # FIELDMESH_GATEWAY_PARTITIONS: gateway processes 0..N-1 (in `fieldmesh run`: pod ordinal x
    # --gateways + i) each own a 1/N share of the devices, by hash, for the kinds whose order
    # matters (gps, events, status, acks); telemetry is shared by every gateway
    gateway_partitions: int = 1
    # DATABASE_REPLICA_URL: a streaming replica for lag-tolerant reads (lists, reports)
    database_replica_url: str | None = None
    replica_max_lag_s: float = 5.0  # FIELDMESH_REPLICA_MAX_LAG_S: staler -> read the primary
    replica_port: int = 55433  # FIELDMESH_REPLICA_PORT: `fieldmesh up --replica`, 127.0.0.1 only
    caldav_port: int = 55232  # FIELDMESH_CALDAV_PORT: embedded CalDAV (Radicale), 127.0.0.1 only
    # CALDAV_URL: an external CalDAV server (Nextcloud, Fastmail ...) instead of the embedded
    # one; each user opting in then gives their own credentials
    caldav_url: str | None = None
    # Mail (engage): the embedded Dovecot (IMAP) and SMTP relay, 127.0.0.1 only, unless
    # SMTP_URL (smtp[s]://user:pass@host:port) / IMAP_URL (imap[s]://host:port) name real servers
    smtp_port: int = 52525  # FIELDMESH_SMTP_PORT
    imap_port: int = 51143  # FIELDMESH_IMAP_PORT
    smtp_url: str | None = None  # SMTP_URL
    imap_url: str | None = None  # IMAP_URL
    # SMS (engage): the embedded Kannel uses FIELDMESH_SMS_PORT .. +3 (admin, smsbox,
    # sendsms, fake SMS centre) unless SMS_GATEWAY_URL names a real Kannel-style sendsms URL
    # (http://user:pass@host:port/cgi-bin/sendsms)
    sms_port: int = 53000  # FIELDMESH_SMS_PORT
    sms_gateway_url: str | None = None  # SMS_GATEWAY_URL
    # FIELDMESH_JOB_CONCURRENCY: jobs one `fieldmesh run` jobs worker runs at once (most
    # wait on I/O: mailbox watches, sends, workflow steps; CPU-heavy ones share the cores)
    job_concurrency: int = 8
    # S3_URL: http(s)://ACCESS_KEY:SECRET@host:port/bucket[/prefix][?region=R] keeps
    # attachments and service reports in S3-compatible storage (AWS, MinIO, Ceph, R2 ...);
    # None: on local disk under state_dir/attachments
    s3_url: str | None = None
    # FIELDMESH_DKIM: selector:domain:/path/to/private-key.pem signs every sent e-mail (DKIM)
    dkim: str | None = None
    # FIELDMESH_SECRET_KEYS: comma-separated Fernet keys that encrypt stored credentials
    # (external CalDAV/IMAP passwords, tokens); the first encrypts, all decrypt (rotation).
    # Empty: one key generated once in state_dir/secret.key (mode 0600)
    secret_keys: tuple[str, ...] = ()

    @property
    def embedded_db(self) -> bool:
        return self.database_url is None

    @property
    def embedded_caldav(self) -> bool:
        return self.caldav_url is None

    @property
    def caldav_base_url(self) -> str:
        """Where calendars live: CALDAV_URL, else the embedded server."""
        if self.caldav_url is not None:
            return self.caldav_url.rstrip("/") + "/"
        return f"http://127.0.0.1:{self.caldav_port}/"

    @property
    def embedded_mqtt(self) -> bool:
        return self.mqtt_url is None

    @property
    def embedded_mail(self) -> bool:
        return self.smtp_url is None

    @property
    def embedded_sms(self) -> bool:
        return self.sms_gateway_url is None

    @property
    def db_name(self) -> str:
        return "fieldmesh"

    @property
    def dsn(self) -> str:
        """libpq connection string of the application database."""
        if self.database_url is not None:
            return self.database_url
        return f"postgresql://fieldmesh@127.0.0.1:{self.pg_port}/{self.db_name}"

    def dsn_for(self, dbname: str) -> str:
        """The same server, another database (tests create their own)."""
        parts = urlsplit(self.dsn)
        return parts._replace(path="/" + dbname).geturl()

    @property
    def mqtt_host(self) -> str:
        if self.mqtt_url is None:
            return "127.0.0.1"
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def mqtt_broker_port(self) -> int:
        if self.mqtt_url is None:
            return self.mqtt_port
        return urlsplit(self.mqtt_url).port or 1883

    @property
    def mqtt_credentials(self) -> tuple[str, str] | None:
        """user:password given in MQTT_URL for an external broker, if any."""
        if self.mqtt_url is None:
            return None
        parts = urlsplit(self.mqtt_url)
        if parts.username is None or parts.password is None:
            return None
        return parts.username, parts.password

    @property
    def mqtt_ws_listen_port(self) -> int:
        """The embedded broker's WebSockets port (FIELDMESH_MQTT_WS_PORT, else MQTT port + 2)."""
        return self.mqtt_ws_port if self.mqtt_ws_port is not None else self.mqtt_port + 2

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


_ENV_KEYS: dict[str, str] = {
    "state_dir": "FIELDMESH_STATE_DIR",
    "tenant": "FIELDMESH_TENANT",
    "pg_port": "FIELDMESH_PG_PORT",
    "mqtt_port": "FIELDMESH_MQTT_PORT",
    "mqtt_tls_port": "FIELDMESH_MQTT_TLS_PORT",
    "mqtt_ws_port": "FIELDMESH_MQTT_WS_PORT",
    "mqtt_ws_url": "FIELDMESH_MQTT_WS_URL",
    "database_url": "DATABASE_URL",
    "mqtt_url": "MQTT_URL",
    "http_host": "FIELDMESH_HTTP_HOST",
    "http_port": "FIELDMESH_HTTP_PORT",
    "gateway_user": "FIELDMESH_GATEWAY_USER",
    "evm_rpc_url": "EVM_RPC_URL",
    "console_tile_url": "FIELDMESH_CONSOLE_TILE_URL",
    "webhook_allow": "FIELDMESH_WEBHOOK_ALLOW",
    "push_allow": "FIELDMESH_PUSH_ALLOW",
    "secure_cookies": "FIELDMESH_SECURE_COOKIES",
    "instance": "FIELDMESH_INSTANCE",
    "gateway_partitions": "FIELDMESH_GATEWAY_PARTITIONS",
    "database_replica_url": "DATABASE_REPLICA_URL",
    "replica_max_lag_s": "FIELDMESH_REPLICA_MAX_LAG_S",
    "replica_port": "FIELDMESH_REPLICA_PORT",
    "caldav_port": "FIELDMESH_CALDAV_PORT",
    "caldav_url": "CALDAV_URL",
    "smtp_port": "FIELDMESH_SMTP_PORT",
    "imap_port": "FIELDMESH_IMAP_PORT",
    "smtp_url": "SMTP_URL",
    "imap_url": "IMAP_URL",
    "sms_port": "FIELDMESH_SMS_PORT",
    "sms_gateway_url": "SMS_GATEWAY_URL",
    "s3_url": "S3_URL",
    "job_concurrency": "FIELDMESH_JOB_CONCURRENCY",
    "dkim": "FIELDMESH_DKIM",
    "secret_keys": "FIELDMESH_SECRET_KEYS",
}


def parse_networks(raw: Any, source: str) -> tuple[IPNetwork, ...]:
    """`a.b.c.d/n, ...` (a string or a TOML list) as networks; a bare address is a /32 or /128."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        raise SettingsError(f"{source}: expected comma-separated networks: {raw!r}")
    out: list[IPNetwork] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise SettingsError(f"{source}: not a network: {text!r} ({exc})") from None
    return tuple(out)


def _coerce(name: str, raw: Any, source: str) -> Any:
    if name == "instance":
        if not isinstance(raw, str) or not _TENANT_RE.match(raw):
            raise SettingsError(f"{source}: instance must match {_TENANT_RE.pattern}: {raw!r}")
        return raw
    if name == "replica_max_lag_s":
        try:
            lag = float(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{source}: not a number of seconds: {raw!r}") from None
        if not 0 <= lag <= 3600:
            raise SettingsError(f"{source}: lag bound out of range 0-3600 s: {lag}")
        return lag
    if name in (
        "pg_port",
        "mqtt_port",
        "mqtt_tls_port",
        "http_port",
        "replica_port",
        "caldav_port",
        "smtp_port",
        "imap_port",
        "sms_port",
        "mqtt_ws_port",
        "http_port",
        "replica_port",
    ):
        try:
            port = int(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{source}: not a port number: {raw!r}") from None
        if not 1 <= port <= 65535:
            raise SettingsError(f"{source}: port out of range 1-65535: {port}")
        return port
    if name == "gateway_partitions":
        try:
            n = int(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{source}: not a number of partitions: {raw!r}") from None
        if not 1 <= n <= 1024:
            raise SettingsError(f"{source}: partitions out of range 1-1024: {n}")
        return n
    if name == "state_dir":
        return Path(str(raw)).expanduser().resolve()
    if name == "tenant":
        if not isinstance(raw, str) or not _TENANT_RE.match(raw):
            raise SettingsError(f"{source}: tenant must match {_TENANT_RE.pattern}: {raw!r}")
        return raw
    if name in ("database_url", "database_replica_url"):
        if not str(raw).startswith(("postgresql://", "postgres://")):
            raise SettingsError(f"{source}: expected postgresql://...: {raw!r}")
        return str(raw)
    if name == "mqtt_ws_url":
        if not str(raw).startswith(("ws://", "wss://")):
            raise SettingsError(f"{source}: expected ws(s)://host:port/path: {raw!r}")
        return str(raw)
    if name == "mqtt_url":
        if not str(raw).startswith(("mqtt://", "tcp://")):
            raise SettingsError(f"{source}: expected mqtt://host:port: {raw!r}")
        return str(raw)
    if name == "caldav_url":
        if not str(raw).startswith(("http://", "https://")):
            raise SettingsError(f"{source}: expected http(s)://host/path: {raw!r}")
        return str(raw)
    if name == "job_concurrency":
        try:
            n = int(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{source}: not a whole number: {raw!r}") from None
        if not 1 <= n <= 64:
            raise SettingsError(f"{source}: out of range 1-64: {n}")
        return n
    if name == "s3_url":
        parts = urlsplit(str(raw))
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or not parts.username
            or not parts.password
            or not parts.path.strip("/")
        ):
            # the URL holds a secret: name what is wrong, never echo it
            raise SettingsError(
                f"{source}: expected http(s)://ACCESS_KEY:SECRET@host:port/bucket[/prefix]"
            )
        return str(raw)
    if name == "sms_gateway_url":
        if not str(raw).startswith(("http://", "https://")):
            raise SettingsError(f"{source}: expected http(s)://user:pass@host:port/path: {raw!r}")
        return str(raw)
    if name in ("smtp_url", "imap_url"):
        scheme = name.split("_")[0]
        if not str(raw).startswith((f"{scheme}://", f"{scheme}s://")):
            raise SettingsError(f"{source}: expected {scheme}[s]://user:pass@host:port: {raw!r}")
        return str(raw)
    if name == "dkim":
        fields_ = str(raw).split(":", 2)
        if len(fields_) != 3 or not all(fields_) or not Path(fields_[2]).is_file():
            raise SettingsError(
                f"{source}: expected selector:domain:/path/to/private-key.pem (a readable file)"
            )
        return str(raw)
    if name == "secret_keys":
        items = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple):
            raise SettingsError(f"{source}: expected comma-separated Fernet keys")
        keys = tuple(str(k).strip() for k in items if str(k).strip())
        for key in keys:
            if not re.fullmatch(r"[A-Za-z0-9_-]{43}=", key):
                # never echo a key: it is a secret
                raise SettingsError(f"{source}: a key is not 32 url-safe base64 bytes (Fernet)")
        return keys
    if name in ("webhook_allow", "push_allow"):
        return parse_networks(raw, source)
    if name == "console_tile_url":
        url = str(raw).strip()
        if not url.startswith(("http://", "https://")) or not all(
            p in url for p in ("{z}", "{x}", "{y}")
        ):
            raise SettingsError(f"{source}: expected http(s)://.../{{z}}/{{x}}/{{y}}...: {raw!r}")
        return url
    if name == "secure_cookies":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise SettingsError(f"{source}: expected true or false: {raw!r}")
        return text in ("1", "true", "yes", "on")
    return str(raw) if raw is not None else None


def load_settings(env: Mapping[str, str] | None = None, toml_path: Path | None = None) -> Settings:
    """Defaults, then the TOML file ([fieldmesh] table), then the environment."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    toml_path = toml_path or (Path(env["FIELDMESH_CONFIG"]) if "FIELDMESH_CONFIG" in env else None)
    if toml_path is not None:
        try:
            doc = tomllib.loads(toml_path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"FIELDMESH_CONFIG: cannot read {toml_path}: {exc}") from exc
        table = doc.get("fieldmesh", doc)
        known = {f.name for f in fields(Settings)}
        for key, raw in table.items():
            if key not in known:
                raise SettingsError(f"{toml_path}: unknown setting {key!r}")
            values[key] = _coerce(key, raw, f"{toml_path}:{key}")
    for name, var in _ENV_KEYS.items():
        if env.get(var):
            values[name] = _coerce(name, env[var], var)
    return Settings(**values)
