"""RFC 6962 / RFC 9162 Merkle tree hashing and proofs, as pure functions over hashes.

leaf = SHA-256(0x00 ‖ leaf bytes), node = SHA-256(0x01 ‖ left ‖ right); the tree over n
leaves splits at the largest power of two smaller than n (RFC 9162 §2.1.1).

Proof generation takes a `SubtreeHash` callable, `subtree(start, end) -> MTH(D[start:end])`,
so the same algorithm serves a list in memory (`subtree_of(hashes)`) and the stored log
(`harbourgate.audit.tree.TreeCache`, which answers from cached tile hashes). Verification
follows RFC 9162 §2.1.3.2 and §2.1.4.2 to the letter, and is checked against the
transparency-dev test vectors in tests/audit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

SubtreeHash = Callable[[int, int], bytes]

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A proof, or the request for one, is not valid; the message says why."""


def leaf_hash(leaf: bytes) -> bytes:
    """The hash of one leaf: SHA-256(0x00 ‖ leaf)."""
    return _sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 ‖ left ‖ right)."""
    return _sha256(b"\x01" + left + right).digest()


def root(hashes: Sequence[bytes]) -> bytes:
    """The root of the tree whose leaf hashes are `hashes`, level by level.

    Pairing neighbours and promoting an odd last node unchanged builds exactly the RFC 6962
    tree, and keeps the inner loop in a comprehension (~1 s per million leaves).
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        odd = level[-1] if len(level) & 1 else None
        it = iter(level)
        level = [_sha256(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=False)]
        if odd is not None:
            level.append(odd)
    return level[0]


def largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162: the largest power of two strictly smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_of(hashes: Sequence[bytes]) -> SubtreeHash:
    """A `SubtreeHash` over leaf hashes held in memory (tests, small trees)."""
    return lambda start, end: root(hashes[start:end])


class CompactRange:
    """The right border of a growing tree: the roots of its perfect subtrees, left to right.

    Appending is amortised O(1) node hashes and memory is O(log n), so a verifier can
    stream a million leaves and still ask for the root at any size it passes.
    """

    __slots__ = ("_nodes", "size")

    def __init__(self) -> None:
        self.size = 0
        self._nodes: list[bytes] = []

    def append(self, hash_: bytes) -> None:
        self._push(hash_, 1)

    def extend(self, hashes: Sequence[bytes]) -> None:
        """Append many leaf hashes, hashing aligned power-of-two runs in bulk."""
        i, n = 0, len(hashes)
        while i < n:
            align = self.size & -self.size if self.size else 1 << 62
            k = min(align, 1 << ((n - i).bit_length() - 1))
            self._push(hashes[i] if k == 1 else root(hashes[i:i + k]), k)
            i += k

    def _push(self, hash_: bytes, width: int) -> None:
        size, bit = self.size, width
        while size & bit:
            hash_ = node_hash(self._nodes.pop(), hash_)
            size ^= bit
            bit <<= 1
        self._nodes.append(hash_)
        self.size += width

    def root(self) -> bytes:
        if not self._nodes:
            return EMPTY_ROOT
        acc = self._nodes[-1]
        for node in reversed(self._nodes[:-1]):
            acc = node_hash(node, acc)
        return acc


# --- proof generation (RFC 9162 §2.1.3.1, §2.1.4.1) ------------------------------------


def inclusion_proof(index: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """The audit path PATH(index, D[size]) as a list of hashes, leaf level first."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = largest_power_of_two_below(end - start)
        if index < start + k:
            path.append(subtree(start + k, end))
            end = start + k
        else:
            path.append(subtree(start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(first: int, second: int, subtree: SubtreeHash) -> list[bytes]:
    """PROOF(first, D[second]): shows the tree of size `first` is a prefix of `second`."""
    if first < 1:
        raise ProofError("first must be at least 1: every tree is consistent with the empty one")
    if first > second:
        raise ProofError(f"first ({first}) must not be greater than second ({second})")
    proof: list[bytes] = []
    m, start, end, complete = first, 0, second, True
    while m != end - start:
        k = largest_power_of_two_below(end - start)
        if m <= k:
            proof.append(subtree(start + k, end))
            end = start + k
        else:
            proof.append(subtree(start, start + k))
            m -= k
            start += k
            complete = False
    if not complete:
        proof.append(subtree(start, end))
    proof.reverse()
    return proof


# --- verification (RFC 9162 §2.1.3.2, §2.1.4.2) -----------------------------------------


def _check_hashes(proof: Iterable[bytes]) -> list[bytes]:
    out = list(proof)
    for i, h in enumerate(out):
        if len(h) != HASH_SIZE:
            raise ProofError(f"proof hash {i} is {len(h)} bytes, not {HASH_SIZE}")
    return out


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Iterable[bytes]) -> bytes:
    """The root that `proof` implies for the leaf hash `leaf` at `index` of `size`."""
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf)} bytes, not {HASH_SIZE}")
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in _check_hashes(proof):
        if sn == 0:
            raise ProofError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is deep")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Iterable[bytes],
                     root_hash: bytes) -> None:
    """Raise `ProofError` unless `proof` shows leaf hash `leaf` at `index` under `root_hash`."""
    if root_from_inclusion(index, size, leaf, proof) != root_hash:
        raise ProofError("the proof does not lead to the expected root hash")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Iterable[bytes]) -> None:
    """Raise `ProofError` unless `proof` shows tree `first` is a prefix of tree `second`."""
    path = _check_hashes(proof)
    if first < 1:
        raise ProofError("first must be at least 1: a consistency proof from the empty tree "
                         "proves nothing")
    if first > second:
        raise ProofError(f"first ({first}) is greater than second ({second})")
    if first == second:
        if path:
            raise ProofError("trees of equal size need an empty proof")
        if first_root != second_root:
            raise ProofError("trees of equal size have different root hashes")
        return
    if not path:
        raise ProofError("the proof is empty")
    if first & (first - 1) == 0:  # an exact power of two: its root is the first node
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is deep")
    if fr != first_root:
        raise ProofError("the proof does not lead to the first root hash")
    if sr != second_root:
        raise ProofError("the proof does not lead to the second root hash")
