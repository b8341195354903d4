"""Errors a policy author can act on: where the problem is, what is wrong, how to fix it.

Every loader collects *all* the problems it finds before raising, so one run of
`harbourgate policy check` lists everything to fix, not just the first mistake.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a policy file, directive or context, located and with its fix."""

    message: str
    source: str = "<input>"
    line: int | None = None
    fix: str = ""

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{where}: {self.message}{fix}"

    def to_dict(self) -> dict[str, object]:
        return {"source": self.source, "line": self.line, "message": self.message,
                "fix": self.fix}


class PolicyError(ValueError):
    """A bundle, context or test file that cannot be used; `problems` lists every issue."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems) or "invalid policy input")


class Problems:
    """A collector: modules append as they validate, then `raise_if_any()` once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[Problem] = []

    def add(self, message: str, line: int | None = None, fix: str = "",
            source: str | None = None) -> None:
        self.items.append(Problem(message, source or self.source, line, fix))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.items.extend(problems)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise PolicyError(self.items)
