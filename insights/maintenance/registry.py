"""Saving and loading model versions: artefact files under the state dir, cards in the DB.

A version is saved as `<root>/<name>/<version>.joblib` (the fitted model object) with
`<version>.json` (its card) beside it, and recorded in the `maintenance_model` table with
its metrics and the data it saw. Activating a version makes it the one scoring uses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal, Protocol

import joblib  # type: ignore[import-untyped]  # no stubs
import psycopg
from psycopg.types.json import Jsonb

from insights.maintenance.errors import DataFormatError, ModelNotFoundError
from insights.maintenance.rul import ModelCard

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class HasCard(Protocol):
    card: ModelCard


def _check_name(kind: str, value: str) -> str:
    if not _NAME_RE.match(value):
        raise DataFormatError(f"model {kind} {value!r} must match {_NAME_RE.pattern}")
    return value


def card_from_dict(d: dict[str, Any]) -> ModelCard:
    try:
        return ModelCard(
            name=str(d["name"]),
            kind=str(d["kind"]),
            version=str(d["version"]),
            created_at=str(d["created_at"]),
            params=dict(d["params"]),
            data=dict(d["data"]),
            metrics={k: float(v) for k, v in dict(d.get("metrics", {})).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(f"not a model card: {exc}") from exc


class ModelStore:
    """Model artefacts on disk, one directory per model name."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, name: str, version: str) -> Path:
        return self.root / _check_name("name", name) / f"{_check_name('version', version)}.joblib"

    def save(self, model: HasCard) -> Path:
        card = model.card
        path = self.path_of(card.name, card.version)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        joblib.dump(model, tmp)
        tmp.replace(path)  # readers never see a half-written file
        path.with_suffix(".json").write_text(json.dumps(card.to_dict(), indent=2))
        return path

    def versions(self, name: str) -> list[str]:
        """Saved versions, oldest first (versions start with their UTC creation time)."""
        folder = self.root / _check_name("name", name)
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.joblib"))

    def card(self, name: str, version: str) -> ModelCard:
        path = self.path_of(name, version).with_suffix(".json")
        if not path.is_file():
            raise ModelNotFoundError(f"no model {name!r} version {version!r}")
        return card_from_dict(json.loads(path.read_text()))

    def load(self, name: str, version: str | None = None) -> Any:
        """The saved model object (the latest version unless one is named)."""
        if version is None:
            versions = self.versions(name)
            if not versions:
                raise ModelNotFoundError(f"no saved versions of model {name!r}")
            version = versions[-1]
        path = self.path_of(name, version)
        if not path.is_file():
            raise ModelNotFoundError(f"no model {name!r} version {version!r}")
        return joblib.load(path)


def load_artifact(path: Path) -> Any:
    """A saved model object by its artefact path (as recorded in the database)."""
    if not path.is_file():
        raise ModelNotFoundError(f"model file {path} is missing")
    return joblib.load(path)


# ----------------------------------------------------------------------- database


def record(conn: psycopg.Connection[Any], card: ModelCard, artifact: Path) -> None:
    """Record a saved version (idempotent on name and version)."""
    conn.execute(
        """
        INSERT INTO maintenance_model
            (name, version, kind, created_at, params, metrics, data, artifact_path)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (name, version) DO UPDATE SET metrics = EXCLUDED.metrics
        """,
        (
            card.name,
            card.version,
            card.kind,
            card.created_at,
            Jsonb(card.params),
            Jsonb(card.metrics),
            Jsonb(card.data),
            str(artifact),
        ),
    )


# Activation, shared by the synchronous callers here and the async API (insights.lifecycle):
# lock every version of the name (concurrent activations queue), switch, log the change.
LOCK_VERSIONS_SQL = "SELECT version, active FROM maintenance_model WHERE name = %s FOR UPDATE"
DEACTIVATE_SQL = "UPDATE maintenance_model SET active = false WHERE name = %s AND active"
ACTIVATE_SQL = "UPDATE maintenance_model SET active = true WHERE name = %s AND version = %s"
LOG_ACTIVATION_SQL = (
    "INSERT INTO insights_model_activation "
    "(model, version, previous_version, activated_via, activated_by) VALUES (%s, %s, %s, %s, %s)"
)


def activate(
    conn: psycopg.Connection[Any],
    name: str,
    version: str,
    by: int | None = None,
    via: Literal["training", "api", "cli"] = "training",
) -> str | None:
    """Make one version the active one of its name, in one transaction, and log the change
    (`via` what, `by` which user asked). The previously active version."""
    with conn.transaction():
        rows = conn.execute(LOCK_VERSIONS_SQL, (name,)).fetchall()
        if not any(r[0] == version for r in rows):
            raise ModelNotFoundError(f"no recorded model {name!r} version {version!r}")
        previous = next((str(r[0]) for r in rows if r[1]), None)
        if previous != version:
            conn.execute(DEACTIVATE_SQL, (name,))
            conn.execute(ACTIVATE_SQL, (name, version))
            conn.execute(LOG_ACTIVATION_SQL, (name, version, previous, via, by))
    return previous


def list_versions(conn: psycopg.Connection[Any], name: str) -> list[tuple[ModelCard, bool]]:
    """Recorded versions of a model, newest first, with whether each is active."""
    rows = conn.execute(
        """
        SELECT name, kind, version, created_at, params, metrics, data, active
        FROM maintenance_model WHERE name = %s ORDER BY created_at DESC, version DESC
        """,
        (name,),
    ).fetchall()
    return [
        (
            card_from_dict(
                {
                    "name": r[0],
                    "kind": r[1],
                    "version": r[2],
                    "created_at": r[3].isoformat(),
                    "params": r[4],
                    "metrics": r[5],
                    "data": r[6],
                }
            ),
            bool(r[7]),
        )
        for r in rows
    ]
