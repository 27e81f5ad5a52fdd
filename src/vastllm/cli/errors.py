"""The CLI's two kinds of failure: bad usage (exit 2) and a failed operation (exit 1); and
``vastllm status``'s verdict on a fleet that is not all healthy (exit 3)."""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DEGRADED = 3  # vastllm status: the run worked, and some GPU host is down or unhealthy
EXIT_CANCELLED = 130


class UsageProblem(Exception):
    """The command line or the environment it names cannot be used (exit 2); ``param`` names
    the option at fault, for the usage message."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class CliFailure(Exception):
    """An operation failed; ``str()`` is the message for the user (exit ``code``)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code
