"""Configuration: defaults, the file, env overrides, and errors that say where and what."""

from __future__ import annotations

from pathlib import Path

import pytest

from harbourgate.config import ConfigError, load


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "harbourgate.yaml"
    path.write_text(text)
    return path


def test_embedded_default_needs_no_file() -> None:
    s = load(None, environ={})
    assert s.data_dir == Path("./harbourgate-data")
    assert s.database_url is None and s.effective_database_url.startswith("sqlite:///")
    assert {r.name for r in s.routes} >= {"fable-5", "mythos-5", "glm-5.2", "qwen-local"}
    assert s.route("fable-5").export_tags == ("us-frontier",)  # type: ignore[union-attr]
    assert s.policy.packs == ("hk-sandbox", "eu-ai-act", "cross-border", "export-directives")
    assert s.limits.max_body_bytes == 4_000_000
    assert s.sandbox.applications and s.admin_tokens == ()


def test_admin_token_from_environment() -> None:
    s = load(None, environ={"HARBOURGATE_ADMIN_TOKEN": "x" * 20})
    assert [(t.token, t.role) for t in s.admin_tokens] == [("x" * 20, "operator")]


def test_admin_token_names_its_holder(tmp_path: Path) -> None:
    path = write(tmp_path, "admin_tokens: [{token: aaaaaaaaaaaaaaaaaa, role: auditor, "
                           "name: ' Mei Chan '}, {token: bbbbbbbbbbbbbbbbbb}]\n")
    tokens = load(str(path)).admin_tokens
    assert [(t.role, t.name) for t in tokens] == [("auditor", "Mei Chan"), ("operator", None)]


def test_file_values_and_route_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FABLE_KEY", "sk-1")
    path = write(tmp_path, """
data_dir: /tmp/hg
routes:
  - name: fable-5
    provider: openai
    base_url: http://127.0.0.1:9100/v1
    upstream_model: fable-5-2026
    api_key_env: FABLE_KEY
    origin: US
    hosting: US
    export_tags: [us-frontier]
    class: frontier-chat
    timeout_s: 12
limits: {max_body_bytes: 1000}
""")
    s = load(path, environ={})
    route = s.routes[0]
    assert (route.provider, route.model_id, route.api_key, route.timeout_s) == (
        "openai", "fable-5-2026", "sk-1", 12.0)
    assert route.capability_class == "frontier-chat"
    assert s.limits.max_body_bytes == 1000
    assert s.sandbox.applications == ()  # a file with its own routes gets no demo seed


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "limits: {max_body_bytes: 1000}\nserver: {workers: 1}\n")
    s = load(path, environ={"HARBOURGATE_LIMITS_MAX_BODY_BYTES": "2048",
                            "HARBOURGATE_SERVER_WORKERS": "3",
                            "HARBOURGATE_DATABASE_URL": "postgresql://u@h/db",
                            "HARBOURGATE_POLICY_PACKS": "[hk-sandbox, cross-border]"})
    assert s.limits.max_body_bytes == 2048 and s.server.workers == 3
    assert s.database_url == "postgresql://u@h/db"
    assert s.policy.packs == ("hk-sandbox", "cross-border")


@pytest.mark.parametrize(("text", "key", "fragment"), [
    ("data_dir: [1, 2]\n", "data_dir", "must be a string"),
    ("colour: blue\n", "colour", "unknown key"),
    ("limits: {max_body_bytes: lots}\n", "limits.max_body_bytes", "must be a number"),
    ("limits: {max_body_bytes: 0}\n", "limits.max_body_bytes", "positive"),
    ("limits: {max_stream_s: -1}\n", "limits.max_stream_s", "positive"),
    ("limits: {max_bytes: 5}\n", "limits.max_bytes", "unknown key"),
    ("routes: [{name: x, provider: bedrock}]\n", "routes[0].provider", "must be one of"),
    ("routes: [{name: x, provider: openai}]\n", "routes[0].base_url", "needs base_url"),
    ("routes: [{provider: stand-in}]\n", "routes[0].name", "needs a name"),
    ("routes: [{name: x}, {name: x}]\n", "routes[1].name", "defined twice"),
    ("routes: [{name: x, colour: red}]\n", "routes[0].colour", "unknown key"),
    ("admin_tokens: [{token: short, role: operator}]\n", "admin_tokens[0]", "16 characters"),
    ("admin_tokens: [{token_env: X, role: god}]\n", "admin_tokens[0].role", "must be one of"),
    ("admin_tokens: [{token: aaaaaaaaaaaaaaaaaa, name: ' '}]\n", "admin_tokens[0].name",
     "1-100 characters"),
    ("database_url: mysql://x\n", "database_url", "postgresql://"),
    ("sandbox: {participants: [{name: no-id}]}\n", "sandbox.participants[0].id", "needs an id"),
])
def test_errors_name_file_key_and_fix(tmp_path: Path, text: str, key: str,
                                      fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load(path, environ={})
    assert exc.value.key == key
    assert str(path) in str(exc.value) and fragment in str(exc.value)


def test_broken_yaml_gives_line(tmp_path: Path) -> None:
    path = write(tmp_path, "data_dir: ok\nroutes: [\n  - name: x\n")
    with pytest.raises(ConfigError) as exc:
        load(path, environ={})
    assert "invalid YAML at line" in str(exc.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load(tmp_path / "nope.yaml", environ={})


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load(write(tmp_path, "- a\n- b\n"), environ={})


def test_empty_file_is_the_default(tmp_path: Path) -> None:
    assert load(write(tmp_path, ""), environ={}).routes == load(None, environ={}).routes
