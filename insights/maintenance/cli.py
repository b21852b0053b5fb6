"""`fieldmesh train ...` and `fieldmesh models NAME`: train, save and list model versions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors

from insights.maintenance import registry, training
from insights.maintenance.errors import MaintenanceError
from kernel.settings import Settings


def _dsn(args: argparse.Namespace, settings: Settings) -> str | None:
    return None if args.no_db else settings.dsn


def _db_error(command: str, exc: psycopg.Error) -> int:
    if isinstance(exc, psycopg.errors.UndefinedTable):
        print(f"fieldmesh {command}: the database is not migrated; run `fieldmesh up` ({exc})")
    else:
        print(f"fieldmesh {command}: database error: {exc}")
    return 1


def _report(trained: training.Trained) -> int:
    card = trained.card
    print(
        json.dumps(
            {
                "name": card.name,
                "version": card.version,
                "metrics": card.metrics,
                "data": {k: v for k, v in card.data.items() if k != "sensors"},
                "artifact": str(trained.artifact),
            }
        )
    )
    return 0


def cmd_train_crm(args: argparse.Namespace, settings: Settings) -> int:
    """lead-score, opportunity-win, account-churn: train from the CRM tables, activate,
    re-score."""
    from insights import live

    try:
        with psycopg.connect(settings.dsn) as conn:
            result = live.train(conn, args.target, training.models_dir(settings.state_dir))
            conn.commit()
            entity = live.ENTITY_OF[args.target]
            n = live.score_records(conn, entity, None)
            conn.commit()
    except MaintenanceError as exc:
        print(f"fieldmesh train: {exc}")
        return 1
    except psycopg.Error as exc:
        return _db_error("train", exc)
    print(f"{result.name} {result.version} (active; {n} open records scored)")
    print(json.dumps(result.metrics, indent=2))
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    if args.target in ("lead-score", "opportunity-win", "account-churn"):
        return cmd_train_crm(args, settings)
    try:
        if args.target == "rul":
            trained = training.train_rul_cmapss(
                args.cmapss,
                state_dir=settings.state_dir,
                dsn=_dsn(args, settings),
                name=args.name or "rul",
                cv_folds=args.cv_folds,
            )
        elif args.target == "failure":
            trained = training.train_failure_sim(
                state_dir=settings.state_dir,
                dsn=_dsn(args, settings),
                n_assets=args.assets,
                days=args.days,
                seed=args.seed,
                name=args.name or "failure-7d",
            )
        elif args.live:
            trained = training.train_anomaly_live(
                args.equipment_model,
                state_dir=settings.state_dir,
                dsn=_dsn(args, settings),
                seed=args.seed,
            )
        else:
            trained = training.train_anomaly_sim(
                args.equipment_model,
                state_dir=settings.state_dir,
                dsn=_dsn(args, settings),
                n_assets=args.assets,
                days=args.days,
                seed=args.seed,
            )
    except MaintenanceError as exc:
        print(f"fieldmesh train: {exc}")
        return 1
    except psycopg.Error as exc:
        return _db_error("train", exc)
    return _report(trained)


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from insights import lifecycle

    try:
        with psycopg.connect(settings.dsn) as conn:
            if args.activate is not None:
                done = lifecycle.activate_sync(conn, args.name, args.activate)
                conn.commit()
                what = "already active" if not done.changed else f"was {done.previous_version}"
                queued = "" if done.rescore_job is None else f"; re-scoring job {done.rescore_job}"
                print(f"{done.name} {done.version} active ({what}{queued})")
            versions = registry.list_versions(conn, args.name)
    except MaintenanceError as exc:
        print(f"fieldmesh models: {exc}")
        return 1
    except psycopg.Error as exc:
        return _db_error("models", exc)
    for card, active in versions:
        flag = "*" if active else " "
        print(f"{flag} {card.version}  {card.kind}  {json.dumps(card.metrics)}")
    if not versions:
        print(f"no recorded versions of model {args.name!r}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model, save, record and activate the version")
    p.add_argument(
        "target",
        choices=("rul", "failure", "anomaly", "lead-score", "opportunity-win", "account-churn"),
        help="lead-score, opportunity-win and account-churn train on the CRM's own records",
    )
    p.add_argument("--cmapss", type=Path, help="rul: a C-MAPSS training file")
    p.add_argument("--equipment-model", default="pump-p200", help="anomaly: which model")
    p.add_argument("--assets", type=int, default=300, help="simulated assets (failure, anomaly)")
    p.add_argument("--days", type=int, default=90, help="simulated days per asset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cv-folds", type=int, default=5, help="rul: CV folds for the card (0: none)")
    p.add_argument("--name", help="model name (default by target)")
    p.add_argument("--no-db", action="store_true", help="save the file only, record nothing")
    p.add_argument(
        "--live",
        action="store_true",
        help="anomaly: a live detector on raw samples, scored by the gateway",
    )

    def _checked(args: argparse.Namespace, settings: Settings) -> int:
        if args.target == "rul" and args.cmapss is None:
            p.error("train rul needs --cmapss FILE")
        return cmd_train(args, settings)

    p.set_defaults(func=_checked)
    m = sub.add_parser(
        "models", help="list a model's recorded versions (* active); --activate one of them"
    )
    m.add_argument("name")
    m.add_argument(
        "--activate",
        metavar="VERSION",
        help="make this recorded version the active one (an older one: a rollback) and "
        "queue the re-scoring of the open records",
    )
    m.set_defaults(func=cmd_models)
