"""What can go wrong in a registry change, as values the admin layer maps to HTTP.

`NotFound` -> 404, `Conflict` -> 409, `InvalidReference` -> 400 naming the field.
"""

from __future__ import annotations


class StoreError(Exception):
    """A registry operation that cannot be done as asked; the message says why."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class NotFound(StoreError):
    """No `kind` with this id."""

    def __init__(self, kind: str, id: str) -> None:
        self.kind = kind
        self.id = id
        super().__init__(f"no {kind} with id {id!r}")


class Conflict(StoreError):
    """A `kind` with this id already exists."""

    def __init__(self, kind: str, id: str) -> None:
        self.kind = kind
        self.id = id
        article = "an" if kind[:1] in "aeiou" else "a"
        super().__init__(f"{article} {kind} with id {id!r} already exists")


class InvalidReference(StoreError):
    """`field` names something that does not exist (e.g. an unknown participant_id)."""

    def __init__(self, field: str, kind: str, id: str) -> None:
        self.field = field
        self.kind = kind
        self.id = id
        super().__init__(f"{field}: no {kind} with id {id!r}")
