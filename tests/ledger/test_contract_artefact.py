"""The committed AnchorRegistry artefact is what solcjs compiles from the committed source."""

from __future__ import annotations

from ledger.compile import ARTEFACT, EVM_VERSION, compile_registry, render


def test_committed_artefact_equals_a_fresh_compile() -> None:
    fresh = compile_registry()
    assert ARTEFACT.read_text() == render(fresh)
    assert fresh["evmVersion"] == EVM_VERSION
    assert "0.8.28" in fresh["compiler"]
    names = {item.get("name") for item in fresh["abi"]}
    assert {"anchor", "anchorOf", "Anchored", "DuplicateRoot"} <= names
