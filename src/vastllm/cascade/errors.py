"""Errors of the cascade: one reason per failed step, one line per candidate when all fail."""

from __future__ import annotations


class EngineError(Exception):
    """An engine step (pull, fetch, chat, status) failed; ``str()`` is the human reason."""


class HttpStatusError(EngineError):
    """An HTTP error answer: ``status`` and ``detail``, the server's own error text."""

    def __init__(self, message: str, status: int, detail: str) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class UsageError(Exception):
    """Bad input: a candidate list, facts file or option that cannot be used."""


class CascadeError(Exception):
    """No candidate passed. ``reasons`` keeps (name, reason) in cascade order."""

    def __init__(self, reasons: list[tuple[str, str]], headline: str | None = None) -> None:
        self.reasons = list(reasons)
        self.headline = headline or "no candidate model passed the cascade"
        lines = [f"{self.headline}:"]
        lines += [f"- {name}: {reason}" for name, reason in self.reasons]
        if not self.reasons:
            lines.append("- (the candidate list is empty)")
        super().__init__("\n".join(lines))
