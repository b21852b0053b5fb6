"""The ledger's one error root and its kinds: bad input, an unavailable chain, a bad receipt."""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error the ledger package raises on purpose."""


class LedgerInputError(LedgerError, ValueError):
    """Input that cannot be canonicalised, hashed or appended; the message names the field."""


class ChainUnavailable(LedgerError):
    """The EVM node cannot be reached or refused a request; retry later, nothing is lost."""


class AnchorError(LedgerError):
    """The chain answered but an anchor transaction could not be made (reverted, dropped...)."""


class ReceiptError(LedgerError, ValueError):
    """A receipt document is malformed (missing or mistyped field)."""
