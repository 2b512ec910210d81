"""Errors that reach users. Each says what happened, where, and what to do."""

from __future__ import annotations


class WiretapeError(Exception):
    """Base class for every error wiretape raises on purpose."""

    exit_code = 2


class ConfigError(WiretapeError):
    """The configuration is wrong. Carries the file and line when known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.hint = hint
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        text = f"{where}{message}"
        if hint:
            text += f"\n  hint: {hint}"
        super().__init__(text)


class SetupError(WiretapeError):
    """The environment cannot run what was asked (app will not start, port taken...)."""


class StoreError(WiretapeError):
    """A test set on disk cannot be read or written."""


class ProtocolError(Exception):
    """A codec met bytes that break its protocol.

    This is the only exception a codec in ``wiretape.protocols`` may raise while parsing.
    ``offset`` is the byte offset in the stream where the problem was found, when known.
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.message = message
        self.offset = offset
        super().__init__(message if offset is None else f"{message} (at byte {offset})")
