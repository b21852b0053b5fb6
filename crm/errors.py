"""The one error root of the crm package: an ApiError, so routes answer it as JSON."""

from __future__ import annotations

from kernel.errors import ApiError


class CrmError(ApiError):
    """Bad input or a refused operation on CRM records; status and field say which."""
