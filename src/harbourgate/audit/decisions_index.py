"""The decisions index: rows of `decisions` derived from request records.

Called by the audit writer inside the transaction that inserts a batch of leaves
(`index_rows`), and by the migration that builds the table from an existing log. A
`kind: request` record becomes a row; a later record that carries `request_id` and
`usage` (the usage of a stream, known only after its last event) fills in that row's
tokens and cost. Other records (admin actions) are not indexed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

COLUMNS = ("audit_id", "ts", "participant", "application", "key", "endpoint",
           "model_requested", "model_served", "decision", "rule", "status", "code", "quota",
           "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
           "reasoning_tokens", "cost")
TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
          "reasoning_tokens")
_INSERT = (f"INSERT INTO decisions ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(COLUMNS))})")
_UPDATE = (f"UPDATE decisions SET {', '.join(f'{c} = ?' for c in (*TOKENS, 'cost'))} "
           "WHERE audit_id = ?")


def _text(value: Any, width: int) -> str | None:
    if isinstance(value, dict | list):  # as in the leaf (sorted keys), not as Python prints it
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()[:width]
    return None if value is None else str(value)[:width]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage(record: Mapping[str, Any]) -> tuple[Any, ...]:
    usage = record.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    cost = record.get("cost")
    cost = float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else 0.0
    return (*(_int(usage.get(t)) for t in TOKENS), cost)


def row_of(record: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The `decisions` row of a request record (in COLUMNS order), or None."""
    if record.get("kind") != "request" or not isinstance(record.get("id"), str):
        return None
    status = record.get("status")
    return (record["id"], str(record.get("ts", "")),
            _text(record.get("participant"), 64), _text(record.get("application"), 64),
            _text(record.get("key"), 64), _text(record.get("endpoint"), 64),
            _text(record.get("model_requested"), 200), _text(record.get("model_served"), 200),
            _text(record.get("decision"), 16) or "deny", _text(record.get("rule"), 200),
            status if isinstance(status, int) and not isinstance(status, bool) else None,
            _text(record.get("code"), 64), _text(record.get("quota"), 64),
            *_usage(record))


def usage_update_of(record: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The (tokens..., cost, audit_id) update a follow-up usage record makes, or None."""
    target = record.get("request_id")
    if record.get("kind") == "request" or not isinstance(target, str) \
            or not isinstance(record.get("usage"), Mapping):
        return None
    return (*_usage(record), target)


def statements(leaves: Iterable[bytes], records: Iterable[Mapping[str, Any] | None] = ()
               ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows to insert and the usage updates to apply for these leaves, in order.
    `records`: the leaves already decoded, where they were (None where not)."""
    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    for leaf, decoded in itertools.zip_longest(leaves, records):
        if b'"kind":"request"' not in leaf and b'"request_id":' not in leaf:
            continue  # an admin action: not indexed, and not worth parsing (keys are sorted
            # and unspaced in a canonical leaf, so the test is exact for what the log writes)
        try:
            record = orjson.loads(leaf) if decoded is None else decoded
        except orjson.JSONDecodeError:
            continue  # `harbourgate audit verify` reports a malformed leaf
        if not isinstance(record, dict):
            continue
        row = row_of(record)
        if row is not None:
            inserts.append(row)
            continue
        update = usage_update_of(record)
        if update is not None:
            updates.append(update)
    return inserts, updates


def index_rows(cursor: Any, leaves: Sequence[bytes], paramstyle: str = "?",
               records: Sequence[Mapping[str, Any] | None] = ()) -> None:
    """Insert the decisions rows of `leaves` through `cursor`, in the caller's transaction
    (`records`: as for `statements`)."""
    inserts, updates = statements(leaves, records)
    if inserts:
        cursor.executemany(_INSERT.replace("?", paramstyle), inserts)
    if updates:
        cursor.executemany(_UPDATE.replace("?", paramstyle), updates)
