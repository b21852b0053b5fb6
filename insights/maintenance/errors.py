"""The one error root of the maintenance models."""

from __future__ import annotations


class MaintenanceError(Exception):
    """Root of every error raised by `insights.maintenance`."""


class DataFormatError(MaintenanceError, ValueError):
    """Input data has the wrong shape or content; the message names what is wrong."""


class InsufficientDataError(MaintenanceError, ValueError):
    """A model was asked to train on too little data; the message gives the reason."""


class ModelNotFoundError(MaintenanceError, LookupError):
    """No saved model matches the requested name and version."""
