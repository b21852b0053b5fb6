"""The ar_viewer error root: every failure this package raises is an ArViewerError."""

from __future__ import annotations


class ArViewerError(Exception):
    """Root of the errors of the AR viewer."""


class SceneInputError(ArViewerError):
    """The input of a scene cannot be used at all (the message names the field)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(ArViewerError):
    """The territory or asset asked for does not exist."""


class ExportError(ArViewerError):
    """A GLB, USDZ or PNG could not be written (the message says which and why)."""


class DataUnavailable(ArViewerError):
    """The tables the scene is read from are missing or the database cannot be reached."""
