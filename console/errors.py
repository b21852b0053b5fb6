"""The console's one error root."""

from __future__ import annotations


class ConsoleError(Exception):
    """Something the console cannot serve or announce; the message names what is wrong."""
