"""What can go wrong with the audit log, as exceptions that carry a message for a person.

The admin router maps them to HTTP (not found -> 404, invalid request -> 400); the CLI to
exit codes. None of them knows about either.
"""

from __future__ import annotations


class AuditError(Exception):
    """Base class of the audit log's errors."""


class EntryNotFoundError(AuditError, LookupError):
    """No entry with that id (or it is not yet part of the tree)."""


class EntryNotIntegratedError(EntryNotFoundError):
    """The entry is recorded but has no leaf index yet, or no signed checkpoint covers it."""


class InvalidProofRequestError(AuditError, ValueError):
    """A proof asked for sizes or indices that do not exist or do not make sense."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class AuditWriteError(AuditError):
    """The entry could not be committed: the caller must not answer as if it was."""


class DuplicateEntryError(AuditWriteError):
    """An entry with this id but different content is already in the log."""


class AuditLogClosedError(AuditWriteError):
    """The log is closed (or was never started): nothing can be appended."""


class LogDamagedError(AuditWriteError):
    """The stored log contradicts its last signed checkpoint: nothing is signed or
    appended until an operator restores the database."""
