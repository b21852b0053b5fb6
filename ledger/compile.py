"""Compile the anchor registry with solcjs (npm `solc`, pinned) into a committed artefact.

``python -m ledger.compile`` (``make contracts``) rewrites ``ledger/contracts/AnchorRegistry.json``;
``python -m ledger.compile --check`` exits 1 if the committed artefact differs from a fresh
compile. Standard-JSON input pins the EVM version and optimiser, and the metadata hash is
left out of the bytecode, so the output depends only on the source and these settings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from ledger.errors import LedgerError

CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
SOURCE = CONTRACTS_DIR / "AnchorRegistry.sol"
ARTEFACT = CONTRACTS_DIR / "AnchorRegistry.json"
CONTRACT_NAME = "AnchorRegistry"
EVM_VERSION = "paris"  # no PUSH0: runs on every EVM chain, eth-tester and anvil alike
OPTIMIZER_RUNS = 200
SOLCJS = Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "solcjs"


class CompileError(LedgerError):
    """solcjs is missing or rejected the source."""


def standard_input(source: str) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {"AnchorRegistry.sol": {"content": source}},
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "metadata": {"bytecodeHash": "none", "appendCBOR": False},
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
            },
        },
    }


def compiler_version(solcjs: Path = SOLCJS) -> str:
    return subprocess.run(
        [str(solcjs), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def compile_registry(solcjs: Path = SOLCJS) -> dict[str, Any]:
    """A fresh artefact: contract name, compiler, settings, ABI and bytecode."""
    if not solcjs.exists():
        raise CompileError(f"solcjs not found at {solcjs}: run `make node` (npm ci)")
    request = json.dumps(standard_input(SOURCE.read_text()))
    proc = subprocess.run(
        [str(solcjs), "--standard-json"], input=request, capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        raise CompileError(f"solcjs exited {proc.returncode}: {proc.stderr.strip()[:2000]}")
    # solcjs may print a warning line before the JSON document.
    out = json.loads(proc.stdout[proc.stdout.index("{") :])
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError(
            "; ".join(e.get("formattedMessage", e.get("message", "")) for e in errors)
        )
    contract = out["contracts"]["AnchorRegistry.sol"][CONTRACT_NAME]
    return {
        "contractName": CONTRACT_NAME,
        "compiler": compiler_version(solcjs),
        "evmVersion": EVM_VERSION,
        "optimizerRuns": OPTIMIZER_RUNS,
        "abi": contract["abi"],
        "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
    }


def render(artefact: dict[str, Any]) -> str:
    return json.dumps(artefact, indent=2, sort_keys=True) + "\n"


def load_artefact(path: Path = ARTEFACT) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger.compile", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare with the committed artefact")
    args = parser.parse_args(argv)
    fresh = render(compile_registry())
    if args.check:
        if not ARTEFACT.exists() or ARTEFACT.read_text() != fresh:
            print(f"{ARTEFACT} differs from a fresh compile: run `make contracts`", file=sys.stderr)
            return 1
        print(f"{ARTEFACT.name} matches a fresh compile")
        return 0
    ARTEFACT.write_text(fresh)
    print(f"wrote {ARTEFACT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
