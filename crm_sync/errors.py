"""The one error root of crm_sync."""

from __future__ import annotations


class CrmSyncError(Exception):
    """Root of every error raised by `crm_sync`."""


class InvalidInput(CrmSyncError, ValueError):
    """Bad input; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownAsset(CrmSyncError, LookupError):
    """An alert or request names an asset that does not exist."""


class BadSignature(CrmSyncError):
    """A signed request's signature is missing, stale or wrong."""
