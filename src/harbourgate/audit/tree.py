"""The integrated tree, in memory as tile hashes, for proofs without rereading the log.

The leaves are grouped in tiles of 256. The process keeps the hash of every complete tile
and of every complete subtree above the tiles (n/128 hashes: 250 KB per million entries),
plus the leaf hashes of the last, incomplete tile. A proof needs at most a few hashes inside
complete tiles; those tiles' leaves are read back from storage (256 rows by index), hashed,
checked against the tile hash kept in memory — a leaf changed since integration is caught
here — and kept in a small LRU cache.

So proofs cost O(log n) hash lookups plus at most two tile reads, start-up costs one pass
over the log, and memory stays small. (Persisting the tile hashes, as Tessera does, would
spare the start-up pass; see docs/auditors.md.)

Tiles are read from storage without holding the lock, so the event loop's commits
(`extend`) never wait milliseconds for the writer thread's checks: a question is answered
from a snapshot of the incomplete tile, and complete tiles never change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

from harbourgate.audit import merkle

TILE_HEIGHT = 8
TILE = 1 << TILE_HEIGHT

ReadLeaves = Callable[[int, int], Sequence[bytes]]  # (start, end) -> leaf bytes by index


class TreeCorruptionError(RuntimeError):
    """Stored leaves no longer hash to what was integrated: the log was tampered with."""


class TreeCache:
    """The Merkle tree over the integrated entries, answering subtree hashes and proofs."""

    def __init__(self, read_leaves: ReadLeaves, *, cached_tiles: int = 64) -> None:
        self._read_leaves = read_leaves
        self._levels: list[list[bytes]] = [[]]  # [0]: tile hashes; [i]: subtrees of 2^i tiles
        self._tail: list[bytes] = []  # leaf hashes of the incomplete last tile
        self._tiles: OrderedDict[int, list[list[bytes]]] = OrderedDict()
        self._cached_tiles = cached_tiles
        self._lock = threading.RLock()

    @property
    def size(self) -> int:
        with self._lock:
            return len(self._levels[0]) * TILE + len(self._tail)

    def extend(self, leaf_hashes: Sequence[bytes], start: int | None = None) -> None:
        """Add the hashes of the leaves integrated at indices `start`, `start` + 1, ...

        Hashes already held (start < size) are skipped, so two threads catching up from
        the same storage cannot add a leaf twice; a gap (start > size) is refused.
        """
        with self._lock:
            size = self.size
            start = size if start is None else start
            if start > size:
                raise ValueError(f"leaves from index {start} cannot follow a tree of {size}")
            for h in leaf_hashes[size - start:]:
                self._tail.append(h)
                if len(self._tail) == TILE:
                    self._complete_tile(self._tail)
                    self._tail = []

    def _complete_tile(self, leaves: list[bytes]) -> None:
        node = merkle.root(leaves)
        level = 0
        while True:
            if level == len(self._levels):
                self._levels.append([])
            row = self._levels[level]
            row.append(node)
            if len(row) & 1:
                return
            node = merkle.node_hash(row[-2], row[-1])
            level += 1

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the tree of `size` leaves (default: all integrated leaves)."""
        with self._lock:
            size = self.size if size is None else size
        subtree = self._subtree_of(size)
        return merkle.EMPTY_ROOT if size == 0 else subtree(0, size)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise merkle.ProofError(f"tree size {size} is beyond the log's {self.size} "
                                    "integrated entries")

    def _subtree_of(self, size: int) -> merkle.SubtreeHash:
        """MTH(D[start:end]) for nodes of the tree of `size` leaves (start aligned, as
        proofs ask), from a snapshot of the incomplete tile taken now."""
        with self._lock:
            self._check_size(size)
            tail_tile, tail = len(self._levels[0]), list(self._tail)

        def subtree(start: int, end: int) -> bytes:
            n = end - start
            if n & (n - 1) == 0 and start % n == 0:
                return complete(start, n)
            k = merkle.largest_power_of_two_below(n)
            return merkle.node_hash(subtree(start, start + k), subtree(start + k, end))

        def complete(start: int, width: int) -> bytes:
            if width >= TILE:
                level = width.bit_length() - 1 - TILE_HEIGHT
                return self._levels[level][start >> (TILE_HEIGHT + level)]
            tile, offset = divmod(start, TILE)
            if tile == tail_tile:  # the incomplete tile, in memory
                return merkle.root(tail[offset:offset + width])
            levels = self._tile_levels(tile)
            height = width.bit_length() - 1
            return levels[height][offset >> height]

        return subtree

    def _tile_levels(self, tile: int) -> list[list[bytes]]:
        with self._lock:
            levels = self._tiles.get(tile)
            if levels is not None:
                self._tiles.move_to_end(tile)
                return levels
            held = self._levels[0][tile]
        leaves = self._read_leaves(tile * TILE, (tile + 1) * TILE)
        level = [merkle.leaf_hash(leaf) for leaf in leaves]
        levels = [level]
        while len(level) > 1:
            it = iter(level)
            level = [merkle.node_hash(a, b) for a, b in zip(it, it, strict=False)]
            levels.append(level)
        if len(leaves) != TILE or levels[-1][0] != held:
            raise TreeCorruptionError(
                f"the stored entries at indices {tile * TILE}..{(tile + 1) * TILE - 1} no "
                "longer hash to the tree this process integrated: the log was modified; "
                "run `harbourgate audit verify`")
        with self._lock:
            self._tiles[tile] = levels
            if len(self._tiles) > self._cached_tiles:
                self._tiles.popitem(last=False)
        return levels

    def verify_tail(self, end: int) -> None:
        """Read the stored tile that holds leaf `end` - 1 back (at most 256 leaves) and check
        it against the tree: `TreeCorruptionError` when a leaf of it was changed or deleted
        (a gap in the indices may surface as the reader's own error)."""
        with self._lock:
            self._check_size(end)
            if end == 0:
                return
            tile = (end - 1) // TILE
            low = tile * TILE
            complete = tile < len(self._levels[0])
            if complete:  # re-read, not taken from the cache
                self._tiles.pop(tile, None)
            held = [] if complete else self._tail[:end - low]
        if complete:
            self._tile_levels(tile)
            return
        stored = [merkle.leaf_hash(leaf) for leaf in self._read_leaves(low, end)]
        if stored != held:
            first = low + next((i for i, (a, b) in enumerate(zip(stored, held, strict=False))
                                if a != b), min(len(stored), len(held)))
            raise TreeCorruptionError(
                f"the stored entry at index {first} no longer hashes to the tree this "
                "process integrated (changed or deleted); run `harbourgate audit verify`")

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return merkle.inclusion_proof(index, size, self._subtree_of(size))

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        return merkle.consistency_proof(first, second, self._subtree_of(second))
