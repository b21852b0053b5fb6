"""Ledger settings, read once from the environment next to fieldmesh's Settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ledger.errors import LedgerError


class LedgerConfigError(LedgerError, ValueError):
    """A ledger setting has a value that cannot work; the message names the variable."""


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    batch_size: int = 1000  # LEDGER_BATCH_SIZE: seal when this many entries wait...
    batch_interval_s: float = 10.0  # LEDGER_BATCH_INTERVAL_S: ...or the oldest waited this long
    max_batch: int = 1_000_000  # LEDGER_MAX_BATCH: entries sealed into one batch at most
    confirmations: int = 1  # LEDGER_CONFIRMATIONS: blocks (including its own) before a receipt
    bump_after_s: float = (
        30.0  # LEDGER_BUMP_AFTER_S: a pending anchor older than this gets higher fees
    )
    recheck_blocks: int = 64  # LEDGER_RECHECK_BLOCKS: anchors this recent are re-checked for reorgs
    poll_s: float = 1.0  # LEDGER_POLL_S: the sealer's loop period
    sender_key: str | None = None  # LEDGER_SENDER_KEY: hex private key of the anchoring account
    contract_address: str | None = (
        None  # LEDGER_CONTRACT: registry address (else recorded/deployed)
    )

    def with_overrides(self, **changes: Any) -> LedgerConfig:
        return replace(self, **changes)


_INT = {
    "LEDGER_BATCH_SIZE": "batch_size",
    "LEDGER_MAX_BATCH": "max_batch",
    "LEDGER_CONFIRMATIONS": "confirmations",
    "LEDGER_RECHECK_BLOCKS": "recheck_blocks",
}
_FLOAT = {
    "LEDGER_BATCH_INTERVAL_S": "batch_interval_s",
    "LEDGER_BUMP_AFTER_S": "bump_after_s",
    "LEDGER_POLL_S": "poll_s",
}


def load_ledger_config(env: Mapping[str, str] | None = None) -> LedgerConfig:
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for var, name in _INT.items():
        if env.get(var):
            try:
                values[name] = int(env[var])
            except ValueError:
                raise LedgerConfigError(f"{var}: not an integer: {env[var]!r}") from None
            if values[name] < 1:
                raise LedgerConfigError(f"{var}: must be at least 1, got {values[name]}")
    for var, name in _FLOAT.items():
        if env.get(var):
            try:
                values[name] = float(env[var])
            except ValueError:
                raise LedgerConfigError(f"{var}: not a number: {env[var]!r}") from None
            if values[name] <= 0:
                raise LedgerConfigError(f"{var}: must be positive, got {values[name]}")
    if env.get("LEDGER_SENDER_KEY"):
        key = env["LEDGER_SENDER_KEY"].removeprefix("0x")
        if len(key) != 64 or any(c not in "0123456789abcdefABCDEF" for c in key):
            raise LedgerConfigError("LEDGER_SENDER_KEY: expected 32 bytes of hex")
        values["sender_key"] = "0x" + key
    if env.get("LEDGER_CONTRACT"):
        addr = env["LEDGER_CONTRACT"]
        if not (addr.startswith("0x") and len(addr) == 42):
            raise LedgerConfigError(
                f"LEDGER_CONTRACT: expected a 0x-prefixed 20-byte address: {addr!r}"
            )
        values["contract_address"] = addr
    return LedgerConfig(**values)
