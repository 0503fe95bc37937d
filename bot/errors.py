"""The project's one error tree.

Adapters catch vendor exceptions once and raise one of these ``from`` them, so
vendor types never cross into services or handlers.
"""

from __future__ import annotations


class FirebellError(Exception):
    """Base of every error firebell raises on purpose."""


class UserError(FirebellError):
    """Something the user did wrong; the message is safe to show them."""


class InvalidRequest(FirebellError):
    """A request (webhook) that is rejected; ``status`` is the HTTP status."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class IntegrationError(FirebellError):
    """A call to an outside service failed.

    ``retryable`` says whether trying again later may succeed; ``retry_after``
    is the delay the service asked for, in seconds, when it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.code = code


class ConfigurationError(FirebellError):
    """The configuration is unusable; the message names the setting."""
