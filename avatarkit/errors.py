"""The one domain error type: its message is what the user reads, so it says what to do."""


class AvatarkitError(Exception):
    """An expected failure with an actionable, one-line message (no traceback for users)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class AvatarkitWarning(UserWarning):
    """Something the user should know about, but which did not stop the work.

    Stages raise it with `warnings.warn(message, AvatarkitWarning)`; the build collects it into
    its result and the CLI prints it in yellow.
    """
