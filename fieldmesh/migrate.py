"""Versioned schema migrations with Alembic.

Each package owns its tables and keeps its revisions in `<package>/migrations/`, as an
Alembic branch labelled with the package name; a package that builds on another's tables
names that revision in `depends_on`. `upgrade` applies every branch ("heads").
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from kernel.settings import PROJECT_ROOT

# Order matters only for readability; Alembic resolves dependencies between branches.
MIGRATING_PACKAGES = (
    "kernel",
    "telemetry",
    "gateway",
    "crm",
    "identity",
    "geo",
    "crm_sync",
    "routing",
    "ledger",
    "ar_viewer",
    "insights",
    "notify",
    "devices",
    "engage",
    "calendars",
    "phone",
    "automation",
    "assistant",
)


def version_locations() -> list[Path]:
    return [
        PROJECT_ROOT / pkg / "migrations"
        for pkg in MIGRATING_PACKAGES
        if (PROJECT_ROOT / pkg / "migrations").is_dir()
    ]


def alembic_config(dsn: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("version_locations", " ".join(str(p) for p in version_locations()))
    cfg.set_main_option("path_separator", "space")
    url = dsn.replace("postgresql://", "postgresql+psycopg://", 1).replace(
        "postgres://", "postgresql+psycopg://", 1
    )
    # ConfigParser interpolation would choke on a '%' in a password.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


_MIGRATE_LOCK = 0x666D6D67  # "fmmg": one migrator at a time per database


def upgrade(dsn: str, target: str = "heads") -> None:
    """Every role's process migrates at start; in a deployment they start together, so
    the upgrade holds an advisory lock and the others wait, then find nothing to do."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as lock:
        lock.execute("SELECT pg_advisory_lock(%s)", (_MIGRATE_LOCK,))
        try:
            command.upgrade(alembic_config(dsn), target)
        finally:
            lock.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATE_LOCK,))


def downgrade(dsn: str, target: str) -> None:
    command.downgrade(alembic_config(dsn), target)
