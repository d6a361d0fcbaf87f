"""The one domain error type: its message is what the user reads, so it says what to do."""


class AvatarkitError(Exception):
    """An expected failure with an actionable, one-line message (no traceback for users)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
