"""The values the audit log hands out: entries and proofs, with their JSON shapes (§4.2)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True, slots=True)
class Entry:
    """An integrated entry: its id, leaf index, exact leaf bytes and the parsed record."""

    id: str
    index: int
    leaf: bytes
    record: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "index": self.index, "leaf": _b64(self.leaf),
                "record": self.record}


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """RFC 9162 §2.1.3: the audit path of leaf `index` in the tree of `tree_size`."""

    index: int
    tree_size: int
    hashes: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "tree_size": self.tree_size,
                "hashes": [_b64(h) for h in self.hashes]}


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """RFC 9162 §2.1.4: the tree of size `first` is a prefix of the tree of size `second`."""

    first: int
    second: int
    hashes: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {"first": self.first, "second": self.second,
                "hashes": [_b64(h) for h in self.hashes]}
