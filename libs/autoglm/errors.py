"""One root error type whose category decides what a service does with a failed message.

- BAD_INPUT: the message itself is unusable; it goes to the dead-letter topic and is committed.
- TRANSIENT: a store or the broker is unavailable; the message is retried (offset not committed).
  A dependency that refuses the service's configuration (a wrong password) is transient too:
  nothing is wrong with the message, and it must be neither dead-lettered nor committed.
- FATAL: the process cannot go on (bad configuration, missing model); it stops.
"""

from __future__ import annotations

from enum import Enum


class ErrorCategory(str, Enum):
    BAD_INPUT = "bad_input"
    TRANSIENT = "transient"
    FATAL = "fatal"


class AutoGLMError(Exception):
    category: ErrorCategory = ErrorCategory.FATAL

    def __init__(self, message: str, *, error_type: str = "error") -> None:
        super().__init__(message)
        self.reason = message
        self.error_type = error_type


class BadInputError(AutoGLMError):
    """The input cannot be processed as sent; retrying it would fail the same way."""

    category = ErrorCategory.BAD_INPUT


class TransientError(AutoGLMError):
    """A dependency failed in a way that may pass; the message should be retried."""

    category = ErrorCategory.TRANSIENT


class MisconfiguredError(TransientError):
    """A dependency refuses this service's configuration (wrong credentials, no such database).

    Nothing is wrong with the message: like any transient error it is retried with the backoff
    and nothing is committed or dead-lettered, so the route in effect stops consuming until
    the configuration is fixed; the runtime logs each retry as an error that says why."""


class FatalError(AutoGLMError):
    """The service cannot continue."""

    category = ErrorCategory.FATAL


BAD_LINES = "kb_bad_lines"
"""Dead-letter error type of a structured document some of whose lines were bad: those lines are
reported, the good ones are written all the same."""

PARTIAL_ERROR_TYPES = frozenset({BAD_LINES})
"""Dead-letter error types that reject part of a message only: the rest goes on and gets its
normal reply, so a client waiting for that reply keeps waiting."""
