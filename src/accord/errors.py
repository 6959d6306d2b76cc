"""The one error hierarchy of Accord.

Domain code raises these; the CLI and the web layer map them to exit codes and HTTP
status codes in one place each. None of them knows anything about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass


class AccordError(Exception):
    """Base of every error Accord raises on purpose. `hint` says what to do next."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


@dataclass(frozen=True)
class Problem:
    """One problem found in a project file or an input, located as precisely as we can."""

    where: str  # "accord.yaml:12" or "crm.csv line 40"
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class ProjectInvalid(AccordError):
    """The project folder has one or more problems; all of them are in `problems`."""

    def __init__(
        self,
        problems: list[Problem],
        *,
        what: str = "the project",
        hint: str = "fix each one listed, then run `accord validate DIR` again",
    ) -> None:
        self.problems = problems
        count = len(problems)
        super().__init__(f"{what} has {count} problem{'s' if count != 1 else ''}", hint=hint)


class InputRejected(AccordError):
    """A whole input (file, batch) cannot be read at all; nothing of it was stored."""


class TooLarge(InputRejected):
    """An input is over a configured size limit; nothing of it was stored."""


class NotFound(AccordError):
    """The thing asked for does not exist (or the actor may not know it exists)."""


class NotAuthenticated(AccordError):
    """No valid credentials were presented."""


class NotAllowed(AccordError):
    """The actor is known but may not do this."""


class Conflict(AccordError):
    """The request conflicts with the current state (for example a name already taken)."""


class Busy(AccordError):
    """Not now: the same request may succeed after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = max(1, retry_after)


class RateLimited(Busy):
    """The caller sent more requests than its rate limit allows."""


class Overloaded(Busy):
    """Accord has more work waiting than its configured bound; nothing was stored."""


class AuditChainBroken(AccordError):
    """The audit log's hash chain does not verify."""
