"""Route declarations of what the upstream speaks and accepts (`api`, `accepts`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harbourgate.config import Accepts, ConfigError, load

ROUTE = "routes: [{name: o4, provider: openai, base_url: 'http://h/v1', %s}]\n"


def settings(tmp_path: Path, extra: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "harbourgate.yaml"
    path.write_text(ROUTE % extra)
    return load(path, environ={}), path


def test_a_route_declares_its_api_and_what_it_accepts(tmp_path: Path) -> None:
    loaded, _ = settings(tmp_path, "api: responses, accepts: {max_completion_tokens: true, "
                                   "n: false, top_k: true}")
    route = loaded.route("o4")
    assert route is not None
    assert route.api == "responses"
    assert route.accepts == Accepts(max_completion_tokens=True, n=False, top_k=True)


def test_the_defaults_speak_chat_completions_and_take_n(tmp_path: Path) -> None:
    loaded, _ = settings(tmp_path, "upstream_model: o4-mini")
    route = loaded.route("o4")
    assert route is not None
    assert (route.api, route.accepts) == ("chat", Accepts(max_completion_tokens=False, n=True,
                                                          top_k=False))


@pytest.mark.parametrize(("extra", "key", "fragment"), [
    ("api: grpc", "routes[0].api", "must be one of chat, responses, not 'grpc'"),
    ("accepts: [n]", "routes[0].accepts", "must be a mapping of max_completion_tokens, n, top_k"),
    ("accepts: {best_of: true}", "routes[0].accepts.best_of", "unknown key; accepts takes"),
    ("accepts: {n: 'yes'}", "routes[0].accepts.n", "must be true or false, not 'yes'"),
])
def test_bad_declarations_name_the_key(tmp_path: Path, extra: str, key: str,
                                       fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings(tmp_path, extra)
    assert info.value.key == key and fragment in str(info.value)


def test_only_an_openai_route_speaks_the_responses_api(tmp_path: Path) -> None:
    path = tmp_path / "harbourgate.yaml"
    path.write_text("routes: [{name: c, provider: anthropic, base_url: 'http://h', "
                    "api: responses}]\n")
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    assert info.value.key == "routes[0].api"
    assert "only an openai route can speak the Responses API" in str(info.value)
