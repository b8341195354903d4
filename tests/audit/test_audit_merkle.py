"""Merkle hashing and proofs against the RFC 6962 vectors and hypothesis properties."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harbourgate.audit import merkle
from harbourgate.audit.merkle import ProofError

# transparency-dev/merkle's vectors (Apache-2.0, LICENSE beside them), copied from shared/
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "rfc6962"
INCLUSION = sorted(VECTORS.glob("inclusion/**/*.json"))
CONSISTENCY = sorted(VECTORS.glob("consistency/**/*.json"))


def _b(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _name(path: Path) -> str:
    return str(path.relative_to(VECTORS))


def test_vectors_are_present() -> None:
    assert len(INCLUSION) > 50 and len(CONSISTENCY) > 50


@pytest.mark.parametrize("path", INCLUSION, ids=_name)
def test_inclusion_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    args = (v["leafIdx"], v["treeSize"], _b(v["leafHash"]), [_b(p) for p in v["proof"] or []],
            _b(v["root"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("path", CONSISTENCY, ids=_name)
def test_consistency_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    args = (v["size1"], v["size2"], _b(v["root1"]), _b(v["root2"]),
            [_b(p) for p in v["proof"] or []])
    if v["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


KNOWN_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                "606162636465666768696a6b6c6d6e6f"]


def test_known_root_of_eight_leaves() -> None:
    hashes = [merkle.leaf_hash(bytes.fromhex(x)) for x in KNOWN_LEAVES]
    assert merkle.root(hashes).hex() == (
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert merkle.root([]).hex().startswith("e3b0c442")
    assert merkle.CompactRange().root() == merkle.EMPTY_ROOT


def test_generated_proofs_match_the_vectors() -> None:
    hashes = [merkle.leaf_hash(bytes.fromhex(x)) for x in KNOWN_LEAVES]
    v = json.loads((VECTORS / "inclusion/1/happy-path.json").read_text())
    proof = merkle.inclusion_proof(v["leafIdx"], v["treeSize"], merkle.subtree_of(hashes))
    assert [base64.b64encode(p).decode() for p in proof] == v["proof"]
    c = json.loads((VECTORS / "consistency/1/happy-path.json").read_text())
    proof = merkle.consistency_proof(c["size1"], c["size2"], merkle.subtree_of(hashes))
    assert [base64.b64encode(p).decode() for p in proof] == c["proof"]


def _tree(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_every_inclusion_proof_verifies(case: tuple[int, int]) -> None:
    size, index = case
    hashes = _tree(size)
    proof = merkle.inclusion_proof(index, size, merkle.subtree_of(hashes))
    merkle.verify_inclusion(index, size, hashes[index], proof, merkle.root(hashes))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_every_consistency_proof_verifies(case: tuple[int, int]) -> None:
    first, second = case
    hashes = _tree(second)
    proof = merkle.consistency_proof(first, second, merkle.subtree_of(hashes))
    merkle.verify_consistency(first, second, merkle.root(hashes[:first]), merkle.root(hashes),
                              proof)


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 200).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))),
       st.integers(0, 10_000), st.sampled_from(["proof", "root", "leaf"]))
def test_any_bit_flip_breaks_an_inclusion_proof(case: tuple[int, int], pick: int,
                                                where: str) -> None:
    size, index = case
    hashes = _tree(size)
    proof = merkle.inclusion_proof(index, size, merkle.subtree_of(hashes))
    leaf, root = hashes[index], merkle.root(hashes)
    if where == "proof":
        i = pick % len(proof)
        proof[i] = _flip(proof[i], pick % 256)
    elif where == "root":
        root = _flip(root, pick % 256)
    else:
        leaf = _flip(leaf, pick % 256)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(index, size, leaf, proof, root)


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 200).flatmap(lambda n: st.tuples(st.integers(1, n - 1), st.just(n))),
       st.integers(0, 10_000), st.sampled_from(["proof", "first", "second"]))
def test_any_bit_flip_breaks_a_consistency_proof(case: tuple[int, int], pick: int,
                                                 where: str) -> None:
    first, second = case
    hashes = _tree(second)
    proof = merkle.consistency_proof(first, second, merkle.subtree_of(hashes))
    r1, r2 = merkle.root(hashes[:first]), merkle.root(hashes)
    if where == "proof":
        i = pick % len(proof)
        proof[i] = _flip(proof[i], pick % 256)
    elif where == "first":
        r1 = _flip(r1, pick % 256)
    else:
        r2 = _flip(r2, pick % 256)
    with pytest.raises(ProofError):
        merkle.verify_consistency(first, second, r1, r2, proof)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 70), min_size=1, max_size=6))
def test_compact_range_matches_root_whatever_the_chunking(chunks: list[int]) -> None:
    hashes = _tree(sum(chunks))
    cr, start = merkle.CompactRange(), 0
    for n in chunks:
        cr.extend(hashes[start:start + n])
        start += n
        assert cr.root() == merkle.root(hashes[:start])


def test_verifier_rejects_a_short_leaf_hash() -> None:
    with pytest.raises(ProofError, match="leaf hash is 31 bytes, not 32"):
        merkle.verify_inclusion(0, 1, b"x" * 31, [], b"x" * 31)


def test_verifier_rejects_a_short_proof_hash() -> None:
    hashes = _tree(4)
    proof = merkle.inclusion_proof(1, 4, merkle.subtree_of(hashes))
    proof[0] = proof[0][:-1]
    with pytest.raises(ProofError, match="proof hash 0 is 31 bytes"):
        merkle.verify_inclusion(1, 4, hashes[1], proof, merkle.root(hashes))


def test_consistency_from_the_empty_tree_is_refused() -> None:
    with pytest.raises(ProofError, match="first must be at least 1"):
        merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
    with pytest.raises(ProofError, match="first must be at least 1"):
        merkle.consistency_proof(0, 3, merkle.subtree_of(_tree(3)))


def test_proof_requests_outside_the_tree_are_refused() -> None:
    subtree = merkle.subtree_of(_tree(3))
    with pytest.raises(ProofError, match="index 3 is outside a tree of size 3"):
        merkle.inclusion_proof(3, 3, subtree)
    with pytest.raises(ProofError, match=r"first \(4\) must not be greater than second \(3\)"):
        merkle.consistency_proof(4, 3, subtree)
