"""Start and stop a local anvil node (npm `@foundry-rs/anvil`) on loopback.

Used by tests, the benchmark and `fieldmesh ledger anvil`. ``state_path`` makes a restart
keep the chain (anvil dumps its state on SIGTERM and loads it on start).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from ledger.errors import ChainUnavailable

ANVIL = Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "anvil"
# anvil's well-known development accounts (test mnemonic "test test ... junk"): never for real funds.
DEV_KEYS: tuple[str, ...] = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
)
DEFAULT_CHAIN_ID = 31337


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rpc_call(url: str, method: str, params: list[object], timeout_s: float = 5.0) -> object:
    """One raw JSON-RPC call (anvil_* and evm_* methods web3 does not wrap)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            doc = json.loads(resp.read())
    except (urllib.error.URLError, OSError) as exc:
        raise ChainUnavailable(f"{url}: {method} failed: {exc}") from exc
    if "error" in doc:
        raise ChainUnavailable(f"{url}: {method} returned an error: {doc['error']}")
    return doc.get("result")


@dataclass
class AnvilNode:
    """A project-started anvil process; use as a context manager or call start()/stop()."""

    port: int = field(default_factory=free_port)
    chain_id: int = DEFAULT_CHAIN_ID
    block_time_s: float | None = None  # None: a block per transaction (automine)
    state_path: Path | None = None
    startup_timeout_s: float = 20.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> AnvilNode:
        if self.running:
            return self
        if not ANVIL.exists():
            raise ChainUnavailable(f"anvil not found at {ANVIL}: run `make node` (npm ci)")
        cmd = [
            str(ANVIL),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--silent",
        ]
        if self.block_time_s is not None:
            cmd += ["--block-time", str(self.block_time_s)]
        if self.state_path is not None:
            cmd += ["--state", str(self.state_path)]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise ChainUnavailable(f"anvil exited with {self._proc.returncode}: {err[:500]}")
            try:
                rpc_call(self.url, "eth_chainId", [], timeout_s=1.0)
                return self
            except ChainUnavailable:
                time.sleep(0.05)
        self.stop()
        raise ChainUnavailable(
            f"anvil did not answer on {self.url} within {self.startup_timeout_s} s"
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (anvil dumps ``state_path`` then exits), SIGKILL if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Chain manipulation for tests.
    def mine(self, blocks: int = 1) -> None:
        rpc_call(self.url, "anvil_mine", [hex(blocks)])

    def reorg(self, depth: int) -> None:
        """Replace the last ``depth`` blocks with empty ones (their transactions are dropped)."""
        rpc_call(self.url, "anvil_reorg", [depth, []])

    def set_automine(self, enabled: bool) -> None:
        rpc_call(self.url, "evm_setAutomine", [enabled])

    def drop_transaction(self, tx_hash: str) -> None:
        rpc_call(self.url, "anvil_dropTransaction", [tx_hash])
