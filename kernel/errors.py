"""The HTTP error contract every package's routes share.

Handlers raise ApiError (or a subclass); the app's middleware turns it into
`{"error": {"code", "message", "field"}}` with the given status. Anything else becomes a
logged 500 with no stack trace to the client.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str = "bad_request",
        field: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class NotFound(ApiError):
    status = 404

    def __init__(self, message: str, *, code: str = "not_found", field: str | None = None) -> None:
        super().__init__(message, code=code, field=field)


class Conflict(ApiError):
    status = 409

    def __init__(self, message: str, *, code: str = "conflict", field: str | None = None) -> None:
        super().__init__(message, code=code, field=field)


class Unprocessable(ApiError):
    status = 422

    def __init__(self, message: str, *, code: str = "invalid", field: str | None = None) -> None:
        super().__init__(message, code=code, field=field)


class Unavailable(ApiError):
    status = 503

    def __init__(self, message: str, *, code: str = "unavailable") -> None:
        super().__init__(message, code=code, headers={"Retry-After": "5"})
