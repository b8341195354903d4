"""The directive document: validation with precise errors, and what it compiles into."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harbourgate.directives import Directive, DirectiveError, load_directive_file
from harbourgate.policy import PolicyError
from harbourgate.policy.bundle import PACKS_DIR

JUNE = {
    "authority": "US Department of Commerce",
    "citation": "Order to Anthropic of 2026-06-12",
    "title": "Frontier models for US nationals only",
    "models": ["fable-5", "mythos-5"],
    "permit_only": {"nationality": ["US"]},
    "effective_from": "2026-06-12T00:00:00Z",
    "effective_until": None,
}
ROUTES = ("fable-5", "mythos-5", "glm-5.2", "qwen-local")


def errors(data: object, **kw: object) -> list[str]:
    with pytest.raises(DirectiveError) as info:
        Directive.from_dict(data, source="d.yaml", **kw)  # type: ignore[arg-type]
    assert isinstance(info.value, PolicyError)  # callers may catch either
    return [str(p) for p in info.value.problems]


def test_the_june_directive_reads_as_written() -> None:
    d = Directive.from_dict(dict(JUNE, id="us-doc", notes="kept"), known_models=ROUTES)
    assert d.models == ("fable-5", "mythos-5") and d.permit_nationality == ("US",)
    assert d.effective_from == datetime(2026, 6, 12, tzinfo=UTC)
    assert d.effective_until is None
    assert d.rule_id == "directive:us-doc"
    assert dict(d.extra) == {"notes": "kept"}
    assert Directive.from_dict(d.to_dict()) == d


def test_the_shipped_example_and_template_are_valid() -> None:
    folder = PACKS_DIR / "export-directives" / "directives"
    example = load_directive_file(folder / "us-doc-2026-06-12.yaml", known_models=ROUTES)
    assert example.to_dict() == dict(JUNE, id="us-doc-2026-06-12")
    template = load_directive_file(folder / "template.yaml")
    assert template.permit_nationality == ("US",)


def test_missing_fixed_keys() -> None:
    assert errors({}) == [
        "d.yaml: authority is required (fix: add who issued it, e.g. `authority: US Department "
        "of Commerce`)",
        "d.yaml: citation is required (fix: add its source, e.g. `citation: \"Order to "
        "Anthropic of 2026-06-12\"`)",
        "d.yaml: title is required (fix: add a short title, e.g. `title: Frontier models for "
        "US nationals only`)",
        "d.yaml: the directive governs no model (fix: add `models: [fable-5, ...]` or "
        "`export_tags: [us-frontier]`)",
        "d.yaml: permit_only is required: who may still use the governed models "
        "(fix: write `permit_only: {nationality: [US]}` (or residence: [...]))"]


def test_an_unknown_model_is_checked_against_the_routes() -> None:
    assert errors(dict(JUNE, models=["fable-5", "fable-6"]), known_models=ROUTES) == [
        "d.yaml: models: unknown model 'fable-6' (fix: use a route name: fable-5, glm-5.2, "
        "mythos-5, qwen-local)"]
    assert Directive.from_dict(dict(JUNE, models=["fable-6"])).models == ("fable-6",)


def test_effective_until_must_be_after_effective_from() -> None:
    assert errors(dict(JUNE, effective_until="2026-06-11T00:00:00Z")) == [
        "d.yaml: effective_until 2026-06-11T00:00:00Z is not after effective_from "
        "2026-06-12T00:00:00Z (fix: a directive must be in force for some time: fix one of "
        "the dates)"]
    assert errors(dict(JUNE, effective_until="2026-06-12T00:00:00Z"))  # equal: never in force


def test_empty_and_malformed_permit_only() -> None:
    empty = ("d.yaml: permit_only is empty: it would cut everyone off without saying whom it "
             "permits (fix: write `permit_only: {nationality: [US]}` (or residence: [...]))")
    assert errors(dict(JUNE, permit_only={})) == [empty]
    assert errors(dict(JUNE, permit_only={"nationality": []})) == [empty]
    assert errors(dict(JUNE, permit_only={"nationality": ["usa"], "citizenship": ["US"]})) == [
        "d.yaml: permit_only: unknown key 'citizenship' (fix: permit_only takes nationality "
        "and residence)",
        "d.yaml: permit_only.nationality: 'usa' is not an ISO 3166-1 alpha-2 code "
        "(fix: use two capital letters, e.g. US, HK)"]
    assert errors(dict(JUNE, permit_only=["US"])) == [
        "d.yaml: permit_only must be a mapping (fix: write `permit_only: {nationality: [US]}` "
        "(or residence: [...]))"]


def test_wrong_types_and_times() -> None:
    assert errors(dict(JUNE, authority=3, models="fable-5", export_tags=[1],
                       effective_from="2026-06-12", id="Bad Id")) == [
        "d.yaml: authority must be non-empty text (fix: write who issued it, e.g. "
        "`authority: US Department of Commerce`)",
        "d.yaml: export_tags must be a list of names (fix: write `export_tags: [a, b]`)",
        "d.yaml: effective_from: 2026-06-12 has no time zone; add Z for UTC "
        "(e.g. 2026-06-12T00:00:00Z)",
        "d.yaml: id 'Bad Id' is malformed (fix: use lower-case letters, digits, dots and "
        "dashes (or leave it out))"]
    assert errors("not a mapping") == [
        "d.yaml: a directive must be a mapping with authority, citation, title, models "
        "(or export_tags) and permit_only"]


def test_a_file_gives_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("authority: X\ncitation: Y\ntitle: Z\nmodels: [m]\n"
                    "permit_only: {nationality: [US]}\neffective_from: soon\n")
    with pytest.raises(DirectiveError) as info:
        load_directive_file(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:6: effective_from: 'soon' is not an ISO-8601 time such as "
        "2026-06-12T00:00:00Z"]
    path.write_text("authority: [unclosed\n")
    with pytest.raises(DirectiveError) as info:
        load_directive_file(path)
    assert str(info.value).startswith(f"{path}:2: invalid YAML")


def test_the_compiled_rule_is_a_model_dependent_legal_restriction() -> None:
    rule = Directive.from_dict(dict(JUNE, id="d1")).to_rule()
    assert (rule.id, rule.kind, rule.code, rule.citation) == (
        "directive:d1", "deny", "legal_restriction", "Order to Anthropic of 2026-06-12")
    assert rule.model_dependent
    assert rule.message == ("Frontier models for US nationals only (US Department of "
                            "Commerce): fable-5, mythos-5 only for verified end users with "
                            "nationality US")


def test_without_an_id_the_rule_id_is_a_content_hash() -> None:
    a, b = Directive.from_dict(JUNE), Directive.from_dict(dict(JUNE, title="Other"))
    assert a.rule_id.startswith("directive:sha256-") and a.rule_id != b.rule_id
    assert a.rule_id == Directive.from_dict(dict(JUNE)).rule_id


countries = st.sampled_from(("US", "HK", "CN", "GB"))


@given(st.booleans(), st.one_of(st.none(), st.lists(countries, max_size=3).map(tuple)),
       st.one_of(st.none(), countries))
def test_permits_nationality_and_residence(verified: bool,
                                           nationality: tuple[str, ...] | None,
                                           residence: str | None) -> None:
    both = Directive.from_dict(dict(JUNE, permit_only={"nationality": ["US"],
                                                       "residence": ["HK"]}))
    expected = verified and bool(nationality) and "US" in (nationality or ()) \
        and residence == "HK"
    assert both.permits(verified, nationality, residence) is expected
    only = Directive.from_dict(JUNE)
    assert only.permits(verified, nationality, residence) is (
        verified and "US" in (nationality or ()))


def test_governs_by_name_or_export_tag() -> None:
    tagged = Directive.from_dict({**{k: v for k, v in JUNE.items() if k != "models"},
                                  "export_tags": ["us-frontier"]})
    assert tagged.governs("anything", ("us-frontier",))
    assert not tagged.governs("fable-5", ())
    assert Directive.from_dict(JUNE).governs("fable-5")
    assert tagged.in_force_at(datetime(2026, 6, 12, tzinfo=UTC))
    assert not tagged.in_force_at(datetime(2026, 6, 11, 23, 59, 59, tzinfo=UTC))
