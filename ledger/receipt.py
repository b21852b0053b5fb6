"""Receipts: everything needed to prove one event was in an anchored log, and their checking.

A receipt is a JSON document (``Receipt.to_json``). ``verify_receipt`` checks it in order:
the entry hashes to ``event_hash`` (else the event was tampered with), the device signature
inside a device event verifies, the inclusion path leads from the leaf to ``root`` at
``tree_size``, and then, through an ``AnchorLookup`` (any EVM node), that the node is the
receipt's chain and the registry holds ``root`` with exactly ``tree_size`` from ``anchor_sender``.
Binding the size matters: an RFC 6962 path alone also fits some other tree sizes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from ledger.canonical import DEVICE_EVENT_SOURCE, canonical_json
from ledger.errors import LedgerInputError, ReceiptError
from ledger.merkle import HASH_SIZE, MerkleError, leaf_hash, root_from_inclusion
from ledger.verify import b64url_decode, verify_event

RECEIPT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Receipt:
    entry: dict[str, Any]
    event_hash: bytes
    leaf_index: int
    tree_size: int
    inclusion_path: tuple[bytes, ...]
    root: bytes
    chain_id: int
    contract_address: str
    anchor_sender: str
    tx_hash: str | None
    block_number: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "v": RECEIPT_VERSION,
            "entry": self.entry,
            "event_hash": self.event_hash.hex(),
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "inclusion_path": [p.hex() for p in self.inclusion_path],
            "root": self.root.hex(),
            "chain_id": self.chain_id,
            "contract_address": self.contract_address,
            "anchor_sender": self.anchor_sender,
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
        }

    @classmethod
    def from_json(cls, doc: Any) -> Receipt:
        if not isinstance(doc, dict):
            raise ReceiptError("receipt: expected a JSON object")
        if doc.get("v") != RECEIPT_VERSION:
            raise ReceiptError(f"v: unsupported receipt version {doc.get('v')!r}")
        entry = doc.get("entry")
        if not isinstance(entry, dict):
            raise ReceiptError("entry: expected the ledger entry object")
        path = doc.get("inclusion_path")
        if not isinstance(path, list):
            raise ReceiptError("inclusion_path: expected a list of hex hashes")
        tx_hash = doc.get("tx_hash")
        block_number = doc.get("block_number")
        return cls(
            entry=entry,
            event_hash=_hash32(doc, "event_hash"),
            leaf_index=_int(doc, "leaf_index"),
            tree_size=_int(doc, "tree_size"),
            inclusion_path=tuple(_hex32(p, f"inclusion_path[{i}]") for i, p in enumerate(path)),
            root=_hash32(doc, "root"),
            chain_id=_int(doc, "chain_id"),
            contract_address=_str(doc, "contract_address"),
            anchor_sender=_str(doc, "anchor_sender"),
            tx_hash=tx_hash if isinstance(tx_hash, str) else None,
            block_number=block_number if isinstance(block_number, int) else None,
        )

    @classmethod
    def loads(cls, text: str) -> Receipt:
        try:
            return cls.from_json(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ReceiptError(f"receipt is not JSON: {exc}") from exc


def _int(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReceiptError(f"{key}: expected a non-negative integer, got {value!r}")
    return value


def _str(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise ReceiptError(f"{key}: expected a string")
    return value


def _hex32(value: Any, key: str) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != HASH_SIZE:
        raise ReceiptError(f"{key}: expected {HASH_SIZE} bytes of hex")
    return raw


def _hash32(doc: dict[str, Any], key: str) -> bytes:
    return _hex32(doc.get(key), key)


@dataclass(frozen=True, slots=True)
class AnchorFacts:
    tree_size: int
    block_time: int
    block_number: int


class AnchorLookup(Protocol):
    """What verification needs from a chain (``ledger.chain.Chain`` provides it)."""

    @property
    def chain_id(self) -> int: ...

    def has_code(self, address: str) -> bool: ...

    def head(self) -> int: ...

    def anchor_facts(
        self, contract_address: str, sender: str, root: bytes
    ) -> AnchorFacts | None: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """``ok`` and a stable ``code`` (``valid``, ``tampered_event``, ``wrong_path``...)."""

    ok: bool
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def check_offline(receipt: Receipt) -> Verdict:
    """Everything that needs no chain: event hash, device signature, inclusion path."""
    try:
        recomputed = hashlib.sha256(canonical_json(receipt.entry, field="entry")).digest()
    except LedgerInputError as exc:
        return Verdict(False, "tampered_event", f"the entry cannot be canonicalised: {exc}")
    if recomputed != receipt.event_hash:
        return Verdict(
            False,
            "tampered_event",
            f"the entry hashes to {recomputed.hex()}, the receipt says {receipt.event_hash.hex()}",
        )
    sig_verdict = _check_device_signature(receipt.entry)
    if sig_verdict is not None:
        return sig_verdict
    try:
        implied = root_from_inclusion(
            receipt.leaf_index,
            receipt.tree_size,
            leaf_hash(receipt.event_hash),
            receipt.inclusion_path,
        )
    except MerkleError as exc:
        return Verdict(False, "wrong_path", f"the inclusion path is malformed: {exc}")
    if implied != receipt.root:
        return Verdict(
            False,
            "wrong_path",
            f"the inclusion path leads to {implied.hex()}, not the receipt's root {receipt.root.hex()}",
        )
    return Verdict(True, "valid_offline", "event hash, signature and inclusion path are consistent")


def _check_device_signature(entry: dict[str, Any]) -> Verdict | None:
    if entry.get("source") != DEVICE_EVENT_SOURCE:
        return None
    p = entry.get("payload")
    if not isinstance(p, dict):
        return Verdict(False, "tampered_event", "device event entry has no payload object")
    key_text = p.get("public_key")
    try:
        key = b64url_decode(key_text) if isinstance(key_text, str) else None
    except ValueError:
        return Verdict(False, "bad_device_signature", "payload.public_key is not base64url")
    data = p.get("data")
    t_ms = p.get("t")
    if isinstance(t_ms, bool) or not isinstance(t_ms, int):
        return Verdict(
            False, "tampered_event", f"payload.t: expected integer milliseconds, got {t_ms!r}"
        )
    result = verify_event(
        key,
        str(p.get("device_id", "")),
        str(p.get("id", "")),
        t_ms,
        str(p.get("type", "")),
        data if isinstance(data, dict) else {},
        p.get("sig"),
    )
    if not result.verified:
        return Verdict(
            False, "bad_device_signature", f"the device signature does not verify: {result.reason}"
        )
    return None


def verify_receipt(receipt: Receipt, chain: AnchorLookup) -> Verdict:
    """Full verification: offline checks, then the anchor on the receipt's chain."""
    offline = check_offline(receipt)
    if not offline.ok:
        return offline
    if chain.chain_id != receipt.chain_id:
        return Verdict(
            False,
            "wrong_chain",
            f"the receipt is for chain {receipt.chain_id}; the node serves chain {chain.chain_id}",
        )
    if not chain.has_code(receipt.contract_address):
        return Verdict(
            False,
            "no_registry",
            f"no contract at {receipt.contract_address} on chain {receipt.chain_id}",
        )
    facts = chain.anchor_facts(receipt.contract_address, receipt.anchor_sender, receipt.root)
    if facts is None:
        return Verdict(
            False,
            "root_not_anchored",
            f"root {receipt.root.hex()} was never anchored by {receipt.anchor_sender} "
            f"in registry {receipt.contract_address}",
        )
    if facts.tree_size != receipt.tree_size:
        return Verdict(
            False,
            "size_mismatch",
            f"root anchored with tree size {facts.tree_size}, the receipt says {receipt.tree_size}",
        )
    confirmations = chain.head() - facts.block_number + 1
    details = {
        "block_number": facts.block_number,
        "block_time": facts.block_time,
        "confirmations": confirmations,
    }
    return Verdict(
        True,
        "valid",
        f"event anchored in block {facts.block_number} (block time {facts.block_time}, "
        f"{confirmations} confirmations) on chain {receipt.chain_id}",
        details,
    )
