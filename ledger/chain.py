"""The EVM adapter: the only module that imports web3.

``Chain`` wraps a node (the in-process eth-tester chain when no RPC URL is given, else any
JSON-RPC URL); ``Anchorer`` sends ``AnchorRegistry.anchor(root, size)`` transactions from one
sender with a local nonce counter, estimated gas, EIP-1559 fees and fee bumping. Every
failure to reach the node becomes ``ChainUnavailable``; a refused anchor ``AnchorError``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import requests
from eth_account import Account
from eth_tester.exceptions import TransactionFailed
from eth_typing import HexStr
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import TxParams

from ledger.compile import load_artefact
from ledger.errors import AnchorError, ChainUnavailable
from ledger.receipt import AnchorFacts

log = logging.getLogger(__name__)

T = TypeVar("T")
GAS_MARGIN = 1.2
BUMP_FACTOR = 1.125  # nodes replace a pending transaction only for >= 10% higher fees
DEFAULT_PRIORITY_FEE_WEI = 1_000_000_000
# eth-tester's funded account #1 (private key 0x...01): only meaningful on that in-process chain.
ETH_TESTER_KEY = "0x" + "00" * 31 + "01"

_UNREACHABLE = (requests.RequestException, OSError, ConnectionError, TimeoutError)


def _call(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except _UNREACHABLE as exc:
        raise ChainUnavailable(f"EVM node unreachable during {what}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class AnchorRecord:
    """What the registry stores for a (sender, root)."""

    tree_size: int
    block_time: int
    block_number: int


@dataclass(frozen=True, slots=True)
class SentTx:
    tx_hash: str
    nonce: int
    gas: int
    max_fee_wei: int
    priority_fee_wei: int


@dataclass(frozen=True, slots=True)
class MinedTx:
    tx_hash: str
    block_number: int
    block_hash: str
    succeeded: bool
    gas_used: int


class Chain:
    """One EVM node."""

    def __init__(self, w3: Web3, rpc_url: str | None) -> None:
        self.w3 = w3
        self.rpc_url = rpc_url
        self._chain_id: int | None = None
        self._abi = load_artefact()["abi"]

    @classmethod
    def connect(cls, rpc_url: str | None, timeout_s: float = 10.0) -> Chain:
        """A node at ``rpc_url``, or a fresh in-process eth-tester chain when None."""
        if rpc_url is None:
            from web3 import EthereumTesterProvider

            return cls(Web3(EthereumTesterProvider()), None)
        return cls(Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s})), rpc_url)

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(_call("eth_chainId", lambda: self.w3.eth.chain_id))
        return self._chain_id

    def head(self) -> int:
        return int(_call("eth_blockNumber", lambda: self.w3.eth.block_number))

    def block_hash(self, number: int) -> str | None:
        try:
            block = _call("eth_getBlockByNumber", lambda: self.w3.eth.get_block(number))
        except Exception as exc:  # web3 raises BlockNotFound for a number past the head
            if isinstance(exc, ChainUnavailable):
                raise
            return None
        return Web3.to_hex(block["hash"])

    def registry(self, address: str) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=self._abi)

    def has_code(self, address: str) -> bool:
        code = _call("eth_getCode", lambda: self.w3.eth.get_code(Web3.to_checksum_address(address)))
        return len(code) > 0

    def deploy_registry(self, private_key: str, timeout_s: float = 60.0) -> str:
        """Deploy AnchorRegistry from ``private_key``; returns the contract address."""
        art = load_artefact()
        acct = Account.from_key(private_key)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        nonce = _call("nonce", lambda: self.w3.eth.get_transaction_count(acct.address, "pending"))
        prio, max_fee = self.fees()
        params = cast(
            TxParams,
            {
                "from": acct.address,
                "nonce": nonce,
                "chainId": self.chain_id,
                "maxPriorityFeePerGas": prio,
                "maxFeePerGas": max_fee,
            },
        )
        tx = factory.constructor().build_transaction(params)
        signed = acct.sign_transaction(tx)
        tx_hash = _call("deploy", lambda: self.w3.eth.send_raw_transaction(signed.raw_transaction))
        try:
            receipt = _call(
                "deploy receipt",
                lambda: self.w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=timeout_s, poll_latency=0.1
                ),
            )
        except TimeExhausted as exc:
            raise AnchorError(
                f"registry deployment {Web3.to_hex(tx_hash)} not mined in {timeout_s} s"
            ) from exc
        if receipt["status"] != 1 or receipt["contractAddress"] is None:
            raise AnchorError(f"registry deployment {Web3.to_hex(tx_hash)} failed")
        return str(receipt["contractAddress"])

    def fees(self) -> tuple[int, int]:
        """(priority fee, max fee) in wei: 2 x the latest base fee plus the priority fee."""
        block = _call("latest block", lambda: self.w3.eth.get_block("latest"))
        base = int(block.get("baseFeePerGas", 0) or 0)
        try:
            prio = int(_call("eth_maxPriorityFeePerGas", lambda: self.w3.eth.max_priority_fee))
        except (Web3RPCError, ValueError, NotImplementedError):
            prio = DEFAULT_PRIORITY_FEE_WEI
        prio = max(prio, 1)
        return prio, 2 * base + prio

    def anchor_of(self, contract_address: str, sender: str, root: bytes) -> AnchorRecord | None:
        """The registry's record of ``root`` anchored by ``sender``; None if never anchored."""
        fn = self.registry(contract_address).functions.anchorOf(
            Web3.to_checksum_address(sender), root
        )
        try:
            size, block_time, block_number = _call("anchorOf", fn.call)
        except (ContractLogicError, Web3RPCError) as exc:
            raise AnchorError(f"anchorOf failed on {contract_address}: {exc}") from exc
        if int(size) == 0:
            return None
        return AnchorRecord(int(size), int(block_time), int(block_number))

    def anchor_facts(self, contract_address: str, sender: str, root: bytes) -> AnchorFacts | None:
        rec = self.anchor_of(contract_address, sender, root)
        return None if rec is None else AnchorFacts(rec.tree_size, rec.block_time, rec.block_number)

    def mined(self, tx_hash: str) -> MinedTx | None:
        """The receipt of a transaction, or None while it is pending, dropped or reorged away."""
        try:
            r = _call(
                "eth_getTransactionReceipt",
                lambda: self.w3.eth.get_transaction_receipt(HexStr(tx_hash)),
            )
        except TransactionNotFound:
            return None
        if r is None or r.get("blockNumber") is None:
            return None
        return MinedTx(
            tx_hash,
            int(r["blockNumber"]),
            Web3.to_hex(r["blockHash"]),
            int(r["status"]) == 1,
            int(r["gasUsed"]),
        )

    def known(self, tx_hash: str) -> bool:
        """Whether the node still knows the transaction (pending or mined)."""
        try:
            _call("eth_getTransactionByHash", lambda: self.w3.eth.get_transaction(HexStr(tx_hash)))
        except TransactionNotFound:
            return False
        return True

    def anchored_log(self, contract_address: str, tx_hash: str) -> dict[str, Any] | None:
        """The ``Anchored`` event a mined anchor transaction emitted."""
        try:
            r = _call("receipt", lambda: self.w3.eth.get_transaction_receipt(HexStr(tx_hash)))
        except TransactionNotFound:
            return None
        events = self.registry(contract_address).events.Anchored().process_receipt(r)
        if not events:
            return None
        args = events[0]["args"]
        return {
            "root": bytes(args["root"]),
            "tree_size": int(args["treeSize"]),
            "sender": str(args["sender"]),
            "block_time": int(args["blockTime"]),
            "block_number": int(r["blockNumber"]),
        }


class Anchorer:
    """Sends anchor transactions from one account, numbering nonces locally."""

    def __init__(self, chain: Chain, contract_address: str, private_key: str) -> None:
        self.chain = chain
        self.contract = chain.registry(contract_address)
        self.contract_address = self.contract.address
        self._account = Account.from_key(private_key)
        self._nonce: int | None = None

    @property
    def sender(self) -> str:
        return str(self._account.address)

    def resync_nonce(self, block: str = "pending") -> int:
        """Reload the next nonce from the node (after a reorg or a 'nonce too low')."""
        self._nonce = int(
            _call(
                "eth_getTransactionCount",
                lambda: self.chain.w3.eth.get_transaction_count(self._account.address, block),  # type: ignore[arg-type]
            )
        )
        return self._nonce

    def estimate_gas(self, root: bytes, tree_size: int) -> int:
        fn = self.contract.functions.anchor(root, tree_size)
        try:
            gas = _call("eth_estimateGas", lambda: fn.estimate_gas({"from": self.sender}))
        except ContractCustomError as exc:
            raise AnchorError(
                f"registry refuses root {root.hex()} (already anchored by this sender?): {exc}"
            ) from exc
        except (ContractLogicError, Web3RPCError, TransactionFailed) as exc:
            raise AnchorError(
                f"registry refuses root {root.hex()} size {tree_size}: {exc}"
            ) from exc
        return math.ceil(int(gas) * GAS_MARGIN)

    def send_anchor(
        self,
        root: bytes,
        tree_size: int,
        *,
        gas: int | None = None,
        fees: tuple[int, int] | None = None,
        nonce: int | None = None,
    ) -> SentTx:
        """Sign and send ``anchor(root, tree_size)``; a new nonce unless one is given (replacement)."""
        if gas is None:
            gas = self.estimate_gas(root, tree_size)
        prio, max_fee = fees if fees is not None else self.chain.fees()
        fresh = nonce is None
        if fresh:
            if self._nonce is None:
                self.resync_nonce()
            assert self._nonce is not None
            nonce = self._nonce
        assert nonce is not None
        params = cast(
            TxParams,
            {
                "from": self.sender,
                "nonce": nonce,
                "gas": gas,
                "chainId": self.chain.chain_id,
                "maxPriorityFeePerGas": prio,
                "maxFeePerGas": max_fee,
            },
        )
        tx = self.contract.functions.anchor(root, tree_size).build_transaction(params)
        signed = self._account.sign_transaction(tx)
        try:
            raw_hash = _call(
                "eth_sendRawTransaction",
                lambda: self.chain.w3.eth.send_raw_transaction(signed.raw_transaction),
            )
        except Web3RPCError as exc:
            text = str(exc).lower()
            if "nonce too low" in text or "nonce is too low" in text or "already known" in text:
                self.resync_nonce()
            raise AnchorError(f"node refused anchor transaction (nonce {nonce}): {exc}") from exc
        if fresh:
            self._nonce = nonce + 1
        return SentTx(Web3.to_hex(raw_hash), nonce, gas, max_fee, prio)

    def bump(self, stuck: SentTx, root: bytes, tree_size: int) -> SentTx:
        """Replace a stuck transaction (same nonce) with fees raised by at least 12.5%."""
        prio_now, max_now = self.chain.fees()
        prio = max(math.ceil(stuck.priority_fee_wei * BUMP_FACTOR) + 1, prio_now)
        max_fee = max(math.ceil(stuck.max_fee_wei * BUMP_FACTOR) + 1, max_now, prio)
        log.info(
            "bumping anchor tx %s (nonce %d): max fee %d -> %d wei",
            stuck.tx_hash,
            stuck.nonce,
            stuck.max_fee_wei,
            max_fee,
        )
        return self.send_anchor(
            root, tree_size, gas=stuck.gas, fees=(prio, max_fee), nonce=stuck.nonce
        )

    def wait_mined(self, tx_hash: str, timeout_s: float = 60.0, poll_s: float = 0.05) -> MinedTx:
        deadline = time.monotonic() + timeout_s
        while True:
            mined = self.chain.mined(tx_hash)
            if mined is not None:
                return mined
            if time.monotonic() > deadline:
                raise AnchorError(f"anchor tx {tx_hash} not mined within {timeout_s} s")
            time.sleep(poll_s)
