"""CLI: ``fieldmesh verify RECEIPT`` (needs only an RPC URL) and ``fieldmesh ledger ...``."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from kernel.settings import Settings
from ledger.config import LedgerConfigError, load_ledger_config
from ledger.errors import LedgerError, ReceiptError


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0: the receipt proves the event; 1: it does not (verdict says why); 2: cannot tell."""
    from ledger import documents as _documents
    from ledger.receipt import Receipt, check_offline, verify_receipt

    try:
        text = sys.stdin.read() if args.receipt == "-" else Path(args.receipt).read_text()
        receipt = Receipt.loads(text)
    except (OSError, ReceiptError) as exc:
        print(f"fieldmesh verify: bad receipt: {exc}", file=sys.stderr)
        return 2
    rpc_url = args.rpc_url or settings.evm_rpc_url
    if args.offline:
        verdict = check_offline(receipt)
    else:
        if rpc_url is None:
            print(
                "fieldmesh verify: give --rpc-url (or EVM_RPC_URL): the receipt is checked "
                "against the chain, not against fieldmesh",
                file=sys.stderr,
            )
            return 2
        from ledger.chain import Chain

        try:
            verdict = verify_receipt(receipt, Chain.connect(rpc_url))
        except LedgerError as exc:
            print(f"fieldmesh verify: cannot check against {rpc_url}: {exc}", file=sys.stderr)
            return 2
    if verdict.ok and (args.document is not None or _documents.is_document_entry(receipt.entry)):
        # a signed document (a service report): its signatures, and the file when given
        if args.document is not None:
            try:
                data = Path(args.document).read_bytes()
            except OSError as exc:
                print(f"fieldmesh verify: cannot read {args.document}: {exc}", file=sys.stderr)
                return 2
            doc_verdict = _documents.check_document(receipt.entry, data)
        else:
            doc_verdict = _documents.check_signatures(receipt.entry)
        if not doc_verdict.ok:
            verdict = doc_verdict
        else:
            verdict = type(verdict)(
                True, verdict.code, f"{verdict.message}; {doc_verdict.message}", verdict.details
            )
    if args.json:
        print(
            json.dumps(
                {
                    "ok": verdict.ok,
                    "code": verdict.code,
                    "message": verdict.message,
                    "details": verdict.details,
                }
            )
        )
    else:
        print(f"{'VALID' if verdict.ok else 'INVALID'} ({verdict.code}): {verdict.message}")
    return 0 if verdict.ok else 1


def _sealer(settings: Settings) -> Any:
    from ledger.chain import Chain
    from ledger.service import Sealer

    config = load_ledger_config()
    return Sealer(settings.dsn, config, lambda: Chain.connect(settings.evm_rpc_url))


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        sealer = _sealer(settings)
    except LedgerConfigError as exc:
        print(f"fieldmesh ledger: bad setting: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    with sealer:
        try:
            sealer.run(stop)
        except KeyboardInterrupt:
            stop.set()
    return 0


def cmd_seal(args: argparse.Namespace, settings: Settings) -> int:
    try:
        sealer = _sealer(settings)
    except LedgerConfigError as exc:
        print(f"fieldmesh ledger: bad setting: {exc}", file=sys.stderr)
        return 2
    with sealer:
        report = sealer.tick(force_seal=True)
        for _ in range(args.steps):
            if report.chain_error:
                break
            report = sealer.tick()
    print(json.dumps(report.__dict__))
    return 1 if report.chain_error else 0


def cmd_receipt(args: argparse.Namespace, settings: Settings) -> int:
    import psycopg

    from ledger.store import receipt_for

    with psycopg.connect(settings.dsn) as conn:
        receipt = receipt_for(conn, args.event_id, args.source)
    if receipt is None:
        print(f"no anchored receipt for {args.event_id!r} (yet)", file=sys.stderr)
        return 1
    print(json.dumps(receipt.to_json(), indent=2))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "verify", help="check a ledger receipt against the chain (no fieldmesh server)"
    )
    p.add_argument("receipt", metavar="RECEIPT", help="receipt JSON file, or - for stdin")
    p.add_argument("--rpc-url", help="EVM JSON-RPC URL (default: EVM_RPC_URL)")
    p.add_argument("--offline", action="store_true", help="only event hash, signature and path")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.add_argument(
        "--document",
        metavar="FILE",
        help="the signed document the receipt anchors (a service report PDF): its hash must match",
    )
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("ledger", help="the anchored event ledger")
    lsub = p.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    q = lsub.add_parser("run", help="run the sealer: ingest, seal, anchor, write receipts")
    q.set_defaults(func=cmd_run)
    q = lsub.add_parser("seal", help="seal what waits now and move anchoring a few steps")
    q.add_argument("--steps", type=int, default=3)
    q.set_defaults(func=cmd_seal)
    q = lsub.add_parser("receipt", help="print the receipt of an event")
    q.add_argument("event_id")
    q.add_argument("--source", default=None, help="device_event, alert, ... (default: any)")
    q.set_defaults(func=cmd_receipt)
