"""The one error root of the geo package.

Input errors carry the name of the offending field so the HTTP layer can point at it.
"""

from __future__ import annotations


class GeoError(Exception):
    """Root of every error the geo package raises on purpose."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidGeometry(GeoError):
    """A geometry that is malformed, empty, self-intersecting or of the wrong type."""


class CoordinateOutOfRange(GeoError):
    """A longitude outside [-180, 180] or a latitude outside [-90, 90]."""


class InvalidFence(GeoError):
    """A geofence definition that cannot be evaluated (e.g. a non-positive radius)."""


class UnknownSubject(GeoError):
    """A subject (device or rep) that the engine has no state for."""
