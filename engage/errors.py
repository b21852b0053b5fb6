"""engage's errors: one root; input errors map to the API's 4xx shapes."""

from __future__ import annotations

from kernel.errors import Unprocessable


class EngageError(Exception):
    """Root of engage's own failures that are not an API input error."""


class ConsentRefused(Unprocessable):
    """A send to a contact who has not consented (or whose address bounced): the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"send refused: {reason}", code="no_consent", field="to")
        self.reason = reason


class ChannelUnavailable(EngageError):
    """A channel's server (SMTP, IMAP, SMS gateway) cannot be reached; the job retries."""
