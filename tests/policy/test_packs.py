"""The shipped packs: their test cases pass, and every rule is exercised by a case."""

from __future__ import annotations

from pathlib import Path

import pytest

from harbourgate import policy
from harbourgate.policy.bundle import PACKS_DIR
from harbourgate.policy.testing import find_test_files, load_test_file, run_tests

from .conftest import SHIPPED

# The legal reference lives in shared/ beside the checkout (read-only, may grow).
CITATIONS = next((p for p in (Path(__file__).resolve().parents[3] / "shared/spec/CITATIONS.md",
                              Path("/work/shared/spec/CITATIONS.md")) if p.exists()),
                 Path("/work/shared/spec/CITATIONS.md"))


def test_every_pack_test_case_passes() -> None:
    report = run_tests([PACKS_DIR])
    assert report.files == 5
    assert len(report.results) >= 100
    assert report.failed == [], report.render()


@pytest.mark.parametrize("pack", SHIPPED)
def test_each_pack_has_its_tests_beside_it(pack: str) -> None:
    assert (PACKS_DIR / pack / f"{pack}.test.yaml").is_file()


def _expectations() -> tuple[set[str], set[str]]:
    fired: set[str] = set()
    not_fired: set[str] = set()
    for path in find_test_files(PACKS_DIR):
        for case in load_test_file(path).cases:
            fired |= set(case.expect.get("rules", ()))
            if "rule" in case.expect:
                fired.add(case.expect["rule"])
            not_fired |= set(case.expect.get("not_rules", ()))
    return fired, not_fired


def test_every_rule_is_shown_firing_by_some_case() -> None:
    fired, _ = _expectations()
    rules = {r.id for r in policy.load_bundle(SHIPPED).rules if not r.default}
    assert rules - fired == set()


def test_every_decision_rule_is_shown_not_firing_too() -> None:
    """The other side of each allow/deny rule is pinned down, not just its firing."""
    _, not_fired = _expectations()
    rules = {r.id for r in policy.load_bundle(SHIPPED).rules if r.kind != "tier"}
    # Rules whose other side is the default outcome of many cases still need explicit ones.
    assert rules - not_fired == set()


def test_pack_headers_say_they_are_not_legal_advice() -> None:
    for pack in SHIPPED:
        head = (PACKS_DIR / pack / "pack.yaml").read_text().split("bundle:")[0]
        assert "NOT legal advice" in head, pack


@pytest.mark.skipif(not CITATIONS.exists(), reason="the shared spec is not mounted")
def test_citations_name_sources_listed_in_citations_md() -> None:
    text = CITATIONS.read_text()
    sources = {"EU AI Act": "EU AI Act", "PIPL": "PIPL", "PDPO": "PDPO",
               "CAC Order No. 16": "Order No. 16", "GBA Standard Contract": "GBA Standard",
               "PCPD": "PCPD", "Digital Policy Office": "Digital Policy Office",
               "HKMA": "HKMA", "15 CFR 734.13": "734.13"}
    for rule in policy.load_bundle(SHIPPED).rules:
        named = [needle for key, needle in sources.items() if key in rule.citation]
        assert named, f"{rule.id}: {rule.citation}"
        for needle in named:
            assert needle in text, f"{rule.id} cites {needle}, absent from CITATIONS.md"
