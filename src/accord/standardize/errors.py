"""The one error the standardizers raise: a value that cannot be standardized."""

from __future__ import annotations

_SHOWN_CHARS = 80


class InvalidValue(ValueError):
    """A value is invalid for its field; `code` is stable ("email.invalid"), `message` human.

    Standardizers raise this and nothing else for bad input, so the mapping engine can
    flag the value instead of storing something it silently "fixed".
    """

    code: str
    message: str

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[InvalidValue], tuple[str, str]]:
        # Keep the error picklable across process pools (default pickling passes args only).
        return (type(self), (self.code, self.message))

    def __repr__(self) -> str:
        return f"InvalidValue({self.code!r}, {self.message!r})"


def show(raw: str) -> str:
    """Return `raw` quoted for an error message, shortened if it is long."""
    if len(raw) <= _SHOWN_CHARS:
        return repr(raw)
    return repr(raw[:_SHOWN_CHARS]) + f"... ({len(raw)} characters)"
