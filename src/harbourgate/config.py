"""Configuration: one YAML file, every key defaulted, environment overrides.

The file is parsed once into a frozen `Settings` tree, so the rest of the code never
looks at raw dictionaries or the environment. Errors name the file, the key and the fix
(`ConfigError`), because an operator reading a stack trace at 3 a.m. deserves better.

Environment variables `HARBOURGATE_<SECTION>_<KEY>` (or `HARBOURGATE_<KEY>` for top-level
scalars) override the file; their values are read as YAML scalars, so `8`, `true` and
`[a, b]` mean what they look like.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROVIDERS = ("openai", "anthropic", "stand-in")
ROLES = ("operator", "auditor")


class ConfigError(Exception):
    """A configuration problem a user can fix: where it is, and what to do."""

    def __init__(self, message: str, *, source: str = "<config>", key: str = "") -> None:
        self.source = source
        self.key = key
        where = f"{source}: {key}: " if key else f"{source}: "
        super().__init__(where + message)


@dataclass(frozen=True)
class RouteConfig:
    """A model name clients ask for, mapped to an upstream and its attributes."""

    name: str
    provider: str = "stand-in"
    base_url: str | None = None
    upstream_model: str | None = None
    api_key_env: str | None = None
    origin: str = "US"
    hosting: str = "US"
    export_tags: tuple[str, ...] = ()
    capability_class: str = "frontier-chat"
    timeout_s: float = 60.0
    status: str = "active"

    @property
    def model_id(self) -> str:
        """The model id sent upstream."""
        return self.upstream_model or self.name

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


@dataclass(frozen=True)
class AdminToken:
    token: str
    role: str


@dataclass(frozen=True)
class PolicySettings:
    packs: tuple[str, ...] = ("hk-sandbox", "eu-ai-act", "cross-border", "export-directives")
    bundles: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerifierSettings:
    jwks: str | None = None
    issuers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 4_000_000
    max_stream_s: float = 3600.0  # overall deadline of one streamed answer


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1


@dataclass(frozen=True)
class AuditSettings:
    origin: str = "harbourgate.local/audit"
    signing_key: str | None = None  # path to an Ed25519 PEM key; default: data_dir/audit-key.pem


@dataclass(frozen=True)
class SandboxSeed:
    participants: tuple[Mapping[str, Any], ...] = ()
    applications: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./harbourgate-data")
    database_url: str | None = None
    redis_url: str | None = None
    admin_tokens: tuple[AdminToken, ...] = ()
    policy: PolicySettings = PolicySettings()
    verifiers: VerifierSettings = VerifierSettings()
    routes: tuple[RouteConfig, ...] = ()
    sandbox: SandboxSeed = SandboxSeed()
    limits: Limits = Limits()
    server: ServerSettings = ServerSettings()
    audit: AuditSettings = AuditSettings()
    source: str = field(default="<embedded default>", compare=False)

    @property
    def effective_database_url(self) -> str:
        """`database_url`, or the SQLite file in `data_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'harbourgate.db').resolve()}"

    def route(self, name: str) -> RouteConfig | None:
        return next((r for r in self.routes if r.name == name), None)


# The embedded default: the stand-in providers and demo routes, answering in-process.
DEFAULT_ROUTES: tuple[dict[str, Any], ...] = (
    {"name": "fable-5", "provider": "stand-in", "origin": "US", "hosting": "US",
     "export_tags": ["us-frontier"], "class": "frontier-chat"},
    {"name": "mythos-5", "provider": "stand-in", "origin": "US", "hosting": "US",
     "export_tags": ["us-frontier"], "class": "frontier-chat"},
    {"name": "glm-5.2", "provider": "stand-in", "origin": "CN", "hosting": "CN",
     "class": "frontier-chat"},
    {"name": "qwen-local", "provider": "stand-in", "origin": "CN", "hosting": "HK",
     "class": "frontier-chat"},
    {"name": "embed-small", "provider": "stand-in", "origin": "HK", "hosting": "HK",
     "class": "embedding-small"},
)

DEFAULT_SANDBOX: dict[str, Any] = {
    "participants": [{"id": "acme", "name": "Acme Research", "jurisdiction": "HK"}],
    "applications": [
        {"id": "acme-research", "participant": "acme", "name": "Acme research assistant",
         "use_cases": ["research.b2b"], "data_origin": "HK",
         "model_preference": ["fable-5", "mythos-5", "glm-5.2", "qwen-local"]},
    ],
}

_TOP_SCALARS = ("data_dir", "database_url", "redis_url")
_SECTIONS: dict[str, type] = {
    "policy": PolicySettings,
    "verifiers": VerifierSettings,
    "limits": Limits,
    "server": ServerSettings,
    "audit": AuditSettings,
}
_KNOWN_TOP = {*_TOP_SCALARS, *_SECTIONS, "admin_tokens", "routes", "sandbox"}
_ROUTE_KEYS = {
    "name", "provider", "base_url", "upstream_model", "api_key_env", "origin", "hosting",
    "export_tags", "class", "timeout_s", "status",
}


def load(path: str | os.PathLike[str] | None = None,
         environ: Mapping[str, str] | None = None) -> Settings:
    """Read the YAML file at `path` (or nothing: the embedded default) plus overrides."""
    environ = os.environ if environ is None else environ
    source = str(path) if path else "<embedded default>"
    raw: dict[str, Any] = {}
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the file ({exc.strerror}); check the path",
                              source=source) from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"invalid YAML{at}: {problem}", source=source) from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError("the file must hold a mapping of keys (data_dir:, routes:, ...)",
                              source=source)
        raw = loaded
    _apply_env(raw, environ, source)
    return _build(raw, source, environ)


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str], source: str) -> None:
    for key in _TOP_SCALARS:
        value = environ.get(f"HARBOURGATE_{key.upper()}")
        if value is not None:
            raw[key] = _scalar(value)
    for section, cls in _SECTIONS.items():
        for f in dataclasses.fields(cls):
            value = environ.get(f"HARBOURGATE_{section.upper()}_{f.name.upper()}")
            if value is not None:
                sect = raw.setdefault(section, {})
                if not isinstance(sect, dict):
                    raise ConfigError("must be a mapping", source=source, key=section)
                sect[f.name] = _scalar(value)


def _scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return text


def _build(raw: dict[str, Any], source: str, environ: Mapping[str, str]) -> Settings:
    unknown = sorted(set(raw) - _KNOWN_TOP)
    if unknown:
        raise ConfigError(f"unknown key; known keys are {', '.join(sorted(_KNOWN_TOP))}",
                          source=source, key=unknown[0])
    kwargs: dict[str, Any] = {"source": source}
    if raw.get("data_dir") is not None:
        kwargs["data_dir"] = Path(_str(raw["data_dir"], source, "data_dir"))
    for key in ("database_url", "redis_url"):
        if raw.get(key) is not None:
            kwargs[key] = _str(raw[key], source, key)
    db = kwargs.get("database_url")
    if db and not db.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
        raise ConfigError("must start with postgresql:// or sqlite:///", source=source,
                          key="database_url")
    for section, cls in _SECTIONS.items():
        if section in raw and raw[section] is not None:
            kwargs[section] = _section(cls, raw[section], source, section)
    kwargs["admin_tokens"] = _admin_tokens(raw.get("admin_tokens"), source, environ)
    routes = raw.get("routes")
    kwargs["routes"] = _routes(DEFAULT_ROUTES if routes is None else routes, source)
    sandbox = raw.get("sandbox", None if "routes" in raw else DEFAULT_SANDBOX)
    kwargs["sandbox"] = _sandbox(sandbox, source)
    settings = Settings(**kwargs)
    if settings.limits.max_body_bytes <= 0:
        raise ConfigError("must be a positive number of bytes", source=source,
                          key="limits.max_body_bytes")
    if settings.limits.max_stream_s <= 0:
        raise ConfigError("must be a positive number of seconds", source=source,
                          key="limits.max_stream_s")
    if settings.server.workers < 1:
        raise ConfigError("must be at least 1", source=source, key="server.workers")
    return settings


def _str(value: Any, source: str, key: str) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ConfigError(f"must be a string, not {type(value).__name__}", source=source, key=key)
    return str(value)


def _section(cls: type, value: Any, source: str, section: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError("must be a mapping", source=source, key=section)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key; {section} takes {', '.join(fields)}", source=source,
                          key=f"{section}.{unknown[0]}")
    out: dict[str, Any] = {}
    for name, item in value.items():
        if item is None:
            continue
        out[name] = _coerce(item, getattr(cls(), name), source, f"{section}.{name}")
    return cls(**out)


def _coerce(value: Any, default: Any, source: str, key: str) -> Any:
    """Coerce `value` to the type of `default`, with an error that says what was expected."""
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError("must be a list of strings", source=source, key=key)
        return tuple(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError("must be true or false", source=source, key=key)
        return value
    if isinstance(default, int | float) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"must be a number, not {value!r}", source=source, key=key)
        return type(default)(value)
    return _str(value, source, key)


def _admin_tokens(value: Any, source: str, environ: Mapping[str, str]) -> tuple[AdminToken, ...]:
    if value is None:
        value = [{"token_env": "HARBOURGATE_ADMIN_TOKEN", "role": "operator"}]
    if not isinstance(value, list):
        raise ConfigError("must be a list of {token_env: NAME, role: operator|auditor}",
                          source=source, key="admin_tokens")
    tokens = []
    for i, item in enumerate(value):
        key = f"admin_tokens[{i}]"
        if not isinstance(item, dict):
            raise ConfigError("must be a mapping with token_env (or token) and role",
                              source=source, key=key)
        role = item.get("role", "operator")
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}, not {role!r}",
                              source=source, key=f"{key}.role")
        if "token_env" in item:
            token = environ.get(str(item["token_env"]))
        elif "token" in item:
            token = _str(item["token"], source, f"{key}.token")
        else:
            raise ConfigError("needs token_env: NAME (or token: VALUE)", source=source, key=key)
        if token:
            if len(token) < 16:
                raise ConfigError("an admin token must be at least 16 characters long",
                                  source=source, key=key)
            tokens.append(AdminToken(token=token, role=role))
    return tuple(tokens)


def _routes(value: Any, source: str) -> tuple[RouteConfig, ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError("must be a list of routes", source=source, key="routes")
    routes: list[RouteConfig] = []
    for i, item in enumerate(value):
        key = f"routes[{i}]"
        if not isinstance(item, dict):
            raise ConfigError("must be a mapping with at least name and provider",
                              source=source, key=key)
        unknown = sorted(set(item) - _ROUTE_KEYS)
        if unknown:
            raise ConfigError(f"unknown key; a route takes {', '.join(sorted(_ROUTE_KEYS))}",
                              source=source, key=f"{key}.{unknown[0]}")
        if not item.get("name"):
            raise ConfigError("needs a name (the model name clients ask for)",
                              source=source, key=f"{key}.name")
        provider = item.get("provider", "stand-in")
        if provider not in PROVIDERS:
            raise ConfigError(f"provider must be one of {', '.join(PROVIDERS)}, not {provider!r}",
                              source=source, key=f"{key}.provider")
        if provider != "stand-in" and not item.get("base_url"):
            raise ConfigError(f"a {provider} route needs base_url", source=source,
                              key=f"{key}.base_url")
        kw: dict[str, Any] = {"name": _str(item["name"], source, f"{key}.name"),
                              "provider": provider}
        for k in ("base_url", "upstream_model", "api_key_env", "origin", "hosting", "status"):
            if item.get(k) is not None:
                kw[k] = _str(item[k], source, f"{key}.{k}")
        if item.get("class") is not None:
            kw["capability_class"] = _str(item["class"], source, f"{key}.class")
        if item.get("export_tags") is not None:
            kw["export_tags"] = _coerce(item["export_tags"], (), source, f"{key}.export_tags")
        if item.get("timeout_s") is not None:
            kw["timeout_s"] = _coerce(item["timeout_s"], 1.0, source, f"{key}.timeout_s")
            if kw["timeout_s"] <= 0:
                raise ConfigError("must be positive", source=source, key=f"{key}.timeout_s")
        if kw["name"] in {r.name for r in routes}:
            raise ConfigError(f"route {kw['name']!r} is defined twice", source=source,
                              key=f"{key}.name")
        routes.append(RouteConfig(**kw))
    return tuple(routes)


def _sandbox(value: Any, source: str) -> SandboxSeed:
    if value is None:
        return SandboxSeed()
    if not isinstance(value, dict):
        raise ConfigError("must be a mapping with participants and applications",
                          source=source, key="sandbox")
    out: dict[str, tuple[Mapping[str, Any], ...]] = {}
    for kind in ("participants", "applications"):
        items = value.get(kind) or []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ConfigError("must be a list of mappings", source=source,
                              key=f"sandbox.{kind}")
        for i, item in enumerate(items):
            if not item.get("id"):
                raise ConfigError("needs an id", source=source, key=f"sandbox.{kind}[{i}].id")
        out[kind] = tuple(items)
    return SandboxSeed(**out)
