"""`TreeCache`: tile hashes in memory answer as the whole list of leaf hashes would."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harbourgate.audit import merkle
from harbourgate.audit.tree import TILE, TreeCache, TreeCorruptionError

LEAVES = [i.to_bytes(2, "big") for i in range(3 * TILE + 40)]
HASHES = [merkle.leaf_hash(leaf) for leaf in LEAVES]


def _read(start: int, end: int) -> list[bytes]:
    return LEAVES[start:end]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 200), min_size=1, max_size=6), st.data())
def test_roots_and_proofs_match_the_plain_computation(chunks: list[int],
                                                      data: st.DataObject) -> None:
    tree = TreeCache(_read, cached_tiles=1)
    size = 0
    for chunk in chunks:
        chunk = min(chunk, len(HASHES) - size)
        tree.extend(HASHES[size:size + chunk], size)
        size += chunk
    assert tree.size == size
    second = data.draw(st.integers(1, size))
    first = data.draw(st.integers(1, second))
    index = data.draw(st.integers(0, second - 1))
    plain = merkle.subtree_of(HASHES[:second])
    assert tree.root(second) == merkle.root(HASHES[:second])
    assert tree.inclusion_proof(index, second) == merkle.inclusion_proof(index, second, plain)
    assert tree.consistency_proof(first, second) == \
        merkle.consistency_proof(first, second, plain)
    tree.verify_tail(second)


def test_extending_never_waits_for_a_tile_read() -> None:
    """The writer thread reads tiles back (milliseconds) while the event loop integrates
    its commits: `extend` must not wait for the read."""
    reading, extended = threading.Event(), threading.Event()
    waited: list[bool] = []

    def slow_read(start: int, end: int) -> list[bytes]:
        reading.set()
        waited.append(extended.wait(10))  # False: extend waited for this read to end
        return LEAVES[start:end]

    tree = TreeCache(slow_read)
    tree.extend(HASHES[:2 * TILE + 5])
    roots: list[bytes] = []
    reader = threading.Thread(target=lambda: roots.append(tree.root(TILE + 3)))
    reader.start()
    assert reading.wait(10)
    tree.extend(HASHES[2 * TILE + 5:], 2 * TILE + 5)
    extended.set()
    reader.join()
    assert waited == [True]
    assert roots == [merkle.root(HASHES[:TILE + 3])]
    assert tree.root() == merkle.root(HASHES)


def _stored_tree(stored: list[bytes]) -> TreeCache:
    tree = TreeCache(lambda start, end: stored[start:end], cached_tiles=1)
    tree.extend([merkle.leaf_hash(leaf) for leaf in stored])
    return tree


def test_a_changed_leaf_in_a_complete_tile_is_caught() -> None:
    stored = [b"leaf %d" % i for i in range(2 * TILE + 3)]
    tree = _stored_tree(stored)
    stored[5] = b"rewritten"
    with pytest.raises(TreeCorruptionError, match=r"indices 0\.\.255"):
        tree.root(7)  # a subtree inside the first tile: read back and checked
    with pytest.raises(TreeCorruptionError, match=r"indices 0\.\.255"):
        tree.verify_tail(TILE)


def test_a_changed_leaf_in_the_last_tile_is_caught() -> None:
    stored = [b"leaf %d" % i for i in range(TILE + 10)]
    tree = _stored_tree(stored)
    stored[TILE + 4] = b"rewritten"
    with pytest.raises(TreeCorruptionError, match=f"index {TILE + 4}"):
        tree.verify_tail(TILE + 10)
