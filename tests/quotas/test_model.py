"""Quota documents: what PRODUCT.md §4.2 accepts, and every bad input named by its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harbourgate import config
from harbourgate.cli import main
from harbourgate.quotas import Price, QuotaError, parse_price, parse_quota

GOOD = {"scope": {"participant": "acme", "route": "qwen-local"}, "requests_per_minute": 600,
        "tokens_per_minute": 200000, "budget": {"tokens": 50000000, "period": "month"},
        "on_exhausted": "reroute", "note": "acme's allocation of the cluster"}


def test_the_documented_shape_round_trips() -> None:
    quota = parse_quota(GOOD, routes={"qwen-local"})
    assert quota.scope.participant == "acme" and quota.scope.route == "qwen-local"
    assert (quota.requests_per_minute, quota.tokens_per_minute) == (600, 200000)
    assert quota.budget is not None and quota.budget.to_dict() == {"tokens": 50000000,
                                                                   "period": "month"}
    out = quota.to_dict()
    assert out["note"] == "acme's allocation of the cluster"  # more keys are kept
    assert parse_quota(out) == quota


def test_an_id_is_derived_from_the_content_when_none_is_given() -> None:
    assert parse_quota(GOOD).id == parse_quota(dict(GOOD)).id
    assert parse_quota(GOOD).id != parse_quota({**GOOD, "requests_per_minute": 601}).id
    assert parse_quota({**GOOD, "id": "acme-qwen"}).id == "acme-qwen"


def test_a_cost_budget() -> None:
    quota = parse_quota({"scope": {"key": "key_1"}, "budget": {"cost": 500.0, "period": "day"}})
    assert quota.budget is not None and quota.budget.kind == "cost"
    assert quota.budget.amount == 500.0 and quota.on_exhausted == "refuse"


@pytest.mark.parametrize(("doc", "field", "words"), [
    ({"scope": {"participant": "acme"}}, "requests_per_minute", "at least one limit"),
    ({"requests_per_minute": 5}, "scope", "must be a mapping"),
    ({"scope": {}, "requests_per_minute": 5}, "scope", "must be a mapping"),
    ({"scope": {"team": "x"}, "requests_per_minute": 5}, "scope.team", "unknown scope key"),
    ({"scope": {"participant": ""}, "requests_per_minute": 5}, "scope.participant",
     "non-empty"),
    ({"scope": {"participant": 7}, "requests_per_minute": 5}, "scope.participant", "not 7"),
    ({"scope": {"route": "nope"}, "requests_per_minute": 5}, "scope.route",
     "not a configured route"),
    ({"scope": {"key": "k"}, "requests_per_minute": -1}, "requests_per_minute", "positive"),
    ({"scope": {"key": "k"}, "requests_per_minute": 0}, "requests_per_minute", "positive"),
    ({"scope": {"key": "k"}, "requests_per_minute": 1.5}, "requests_per_minute", "whole"),
    ({"scope": {"key": "k"}, "requests_per_minute": "ten"}, "requests_per_minute",
     "must be a number"),
    ({"scope": {"key": "k"}, "requests_per_minute": True}, "requests_per_minute",
     "must be a number"),
    ({"scope": {"key": "k"}, "tokens_per_minute": 10**15}, "tokens_per_minute",
     "beyond any real limit"),
    ({"scope": {"key": "k"}, "budget": {"tokens": 5, "period": "fortnight"}}, "budget.period",
     "day, week, month"),
    ({"scope": {"key": "k"}, "budget": {"tokens": 5}}, "budget.period", "not None"),
    ({"scope": {"key": "k"}, "budget": {"tokens": 5, "cost": 1, "period": "day"}}, "budget",
     "exactly one"),
    ({"scope": {"key": "k"}, "budget": {"cost": float("nan"), "period": "day"}},
     "budget.cost", "must be a number"),
    ({"scope": {"key": "k"}, "budget": {"cost": -3, "period": "day"}}, "budget.cost",
     "positive"),
    ({"scope": {"key": "k"}, "budget": {"coins": 3, "period": "day"}}, "budget.coins",
     "unknown key"),
    ({"scope": {"key": "k"}, "budget": 5}, "budget", "must be a mapping"),
    ({"scope": {"key": "k"}, "requests_per_minute": 5, "on_exhausted": "queue"},
     "on_exhausted", "refuse, reroute"),
    ({"scope": {"key": "k"}, "requests_per_minute": 5, "id": "no spaces"}, "id", "letters"),
])
def test_bad_quotas_name_the_field(doc: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(QuotaError) as caught:
        parse_quota(doc, routes={"fable-5"})
    assert caught.value.field == field
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"{field}: ")


def test_prices() -> None:
    assert parse_price({"input_per_mtok": 3, "output_per_mtok": 15.0}) == Price(3.0, 15.0)
    assert Price(3.0, 15.0).cost(1_000_000, 100_000) == pytest.approx(4.5)
    assert Price(3.0, 15.0).nano_cost(1, 1) == 18_000
    assert Price(0.15, 0.6).nano_cost(1, 0) == 150
    for bad, field in (({"input_per_mtok": "cheap"}, "price.input_per_mtok"),
                       ({"output_per_mtok": -1}, "price.output_per_mtok"),
                       ({"per_token": 1}, "price.per_token"), ("3.0", "price")):
        with pytest.raises(QuotaError) as caught:
            parse_price(bad)
        assert caught.value.field == field


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "harbourgate.yaml"
    path.write_text(f"data_dir: {tmp_path}\n{body}", encoding="utf-8")
    return path


def test_config_reads_route_prices_and_quotas(tmp_path: Path) -> None:
    path = _write(tmp_path, """
routes:
  - {name: fable-5, provider: stand-in, price: {input_per_mtok: 3.0, output_per_mtok: 15.0}}
  - {name: qwen-local, provider: stand-in}
quotas:
  - {id: acme-qwen, scope: {participant: acme, route: qwen-local}, requests_per_minute: 60,
     on_exhausted: reroute}
  - {scope: {key: key_1}, budget: {cost: 5, period: week}}
quota_store: {on_redis_unreachable: closed}
""")
    settings = config.load(path, environ={})
    assert settings.route("fable-5").price == Price(3.0, 15.0)  # type: ignore[union-attr]
    assert settings.route("qwen-local").price == Price()  # type: ignore[union-attr]
    assert settings.quotas[0].id == "acme-qwen"
    assert settings.quotas[1].id.startswith("q-")
    assert settings.quota_store.on_redis_unreachable == "closed"


@pytest.mark.parametrize(("body", "key", "words"), [
    ("quotas:\n  - {scope: {participant: acme}}\n", "quotas[0].requests_per_minute",
     "at least one limit"),
    ("quotas:\n  - {scope: {participant: acme}, requests_per_minute: -5}\n",
     "quotas[0].requests_per_minute", "positive"),
    ("quotas:\n  - {scope: {key: k}, requests_per_minute: 1}\n"
     "  - {scope: {key: k}, budget: {tokens: 9, period: year}}\n",
     "quotas[1].budget.period", "day, week, month"),
    ("quotas:\n  - {scope: {route: nowhere}, requests_per_minute: 1}\n",
     "quotas[0].scope.route", "not a configured route"),
    ("quotas: {scope: x}\n", "quotas", "must be a list"),
    ("quotas:\n  - 5\n", "quotas[0]", "must be a mapping"),
    ("routes:\n  - {name: a, price: {input_per_mtok: lots}}\n", "routes[0].price.input_per_mtok",
     "must be a number"),
    ("quota_store: {on_redis_unreachable: maybe}\n", "quota_store.on_redis_unreachable",
     "open or closed"),
])
def test_bad_config_quotas_name_file_and_key(tmp_path: Path, body: str, key: str,
                                             words: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, environ={})
    assert caught.value.key == key and caught.value.source == str(path)
    assert words in str(caught.value)


def test_the_cli_exits_2_with_file_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "quotas:\n  - {scope: {participant: acme}, "
                            "budget: {tokens: 10, period: fortnight}}\n")
    result = CliRunner().invoke(main, ["usage", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}: quotas[0].budget.period: must be one of day, week, month" in result.output


def test_the_environment_overrides_the_quota_store(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    settings = config.load(path, environ={
        "HARBOURGATE_QUOTA_STORE_ON_REDIS_UNREACHABLE": "closed",
        "HARBOURGATE_QUOTA_STORE_PATH": str(tmp_path / "counters.db")})
    assert settings.quota_store.on_redis_unreachable == "closed"
    assert settings.quota_store.path == str(tmp_path / "counters.db")
