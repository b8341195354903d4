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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harbourgate.quotas.model import FREE, Price, Quota, QuotaError, parse_price, parse_quota

PROVIDERS = ("openai", "anthropic", "stand-in")
ROLES = ("operator", "auditor")
BALANCES = ("least_outstanding", "round_robin")


class ConfigError(Exception):
    """A configuration problem a user can fix: where it is, and what to do."""

    def __init__(self, message: str, *, source: str = "<config>", key: str = "") -> None:
        self.source = source
        self.key = key
        where = f"{source}: {key}: " if key else f"{source}: "
        super().__init__(where + message)


ROUTE_APIS = ("chat", "responses")


@dataclass(frozen=True)
class Accepts:
    """What a route's upstream takes beyond the common ground (docs/translation.md)."""

    max_completion_tokens: bool = False  # OpenAI reasoning models refuse max_tokens
    n: bool = True  # several choices per request (OpenAI, vLLM)
    top_k: bool = False  # vLLM's top_k extension to Chat Completions


@dataclass(frozen=True)
class EndpointConfig:
    """One server of a pool; `max_concurrency` None = no limit of the gateway's own."""

    base_url: str
    max_concurrency: int | None = None


@dataclass(frozen=True)
class HealthConfig:
    """The pool's active health check: GET `path` on each server's host every `interval_s`
    (0: off); `metrics_path`, if set, is scraped for vLLM's queue gauges at the same pace."""

    path: str = "/health"
    interval_s: float = 5.0
    metrics_path: str | None = None


@dataclass(frozen=True)
class CapacityConfig:
    """What a route can take, as declared by its operator (None: not declared)."""

    requests_per_second: float | None = None
    tokens_per_second: float | None = None


@dataclass(frozen=True)
class RouteConfig:
    """A model name clients ask for, mapped to an upstream and its attributes.

    `api`: which OpenAI API an openai route's upstream speaks, `chat` (Chat Completions)
    or `responses` (the Responses API, natively: stateful requests pass through).
    A pool (`endpoints`) is served by several servers of one model instead of `base_url`.
    """

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
    api: str = "chat"
    accepts: Accepts = Accepts()
    endpoints: tuple[EndpointConfig, ...] = ()
    balance: str = "least_outstanding"
    health: HealthConfig = HealthConfig()
    capacity: CapacityConfig = CapacityConfig()
    price: Price = FREE  # per million tokens: cost budgets and usage

    @property
    def is_pool(self) -> bool:
        return bool(self.endpoints)

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
    name: str | None = None  # the person or team holding it, named in every audit entry


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
    """What one client may make a worker hold, enforced before parsing or authentication."""

    max_body_bytes: int = 4_000_000
    max_header_bytes: int = 65_536
    max_headers: int = 100
    read_timeout_s: float = 30.0
    max_connections: int = 1_000
    max_upstream_response_bytes: int = 64_000_000
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
    public: bool = True  # GET /audit/checkpoint and /audit/key without authentication


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "info"
    format: str = "text"  # text | json (one object per line)
    access: bool = True  # one line per data-plane request


@dataclass(frozen=True)
class TelemetrySettings:
    otlp_endpoint: str | None = None  # OTLP/HTTP base URL, e.g. http://collector:4318
    service_name: str = "harbourgate"
    export_interval_s: float = 10.0  # how often metrics are pushed (spans: every second)


@dataclass(frozen=True)
class QuotaStoreSettings:
    """Where quota counters live: Redis when `redis_url` is set, else `path` (default
    data_dir/quota-counters.db, shared by the workers). `on_redis_unreachable`: `open`
    falls back to per-process counters, `closed` refuses governed requests (503)."""

    on_redis_unreachable: str = "open"
    path: str | None = None


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
    logging: LoggingSettings = LoggingSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    quotas: tuple[Quota, ...] = ()
    quota_store: QuotaStoreSettings = QuotaStoreSettings()
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
     "class": "frontier-chat", "capacity": {"requests_per_second": 40,
                                            "tokens_per_second": 20000}},
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
    "logging": LoggingSettings,
    "telemetry": TelemetrySettings,
    "quota_store": QuotaStoreSettings,
}
_KNOWN_TOP = {*_TOP_SCALARS, *_SECTIONS, "admin_tokens", "routes", "sandbox", "quotas"}
_ROUTE_KEYS = {
    "name", "provider", "base_url", "upstream_model", "api_key_env", "origin", "hosting",
    "export_tags", "class", "timeout_s", "status", "api", "accepts", "endpoints", "balance",
    "health", "capacity", "price",
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
    kwargs["quotas"] = _quotas(raw.get("quotas"), source, {r.name for r in kwargs["routes"]})
    settings = Settings(**kwargs)
    if settings.quota_store.on_redis_unreachable not in ("open", "closed"):
        raise ConfigError("must be open or closed", source=source,
                          key="quota_store.on_redis_unreachable")
    for f in dataclasses.fields(Limits):
        if getattr(settings.limits, f.name) <= 0:
            raise ConfigError("must be a positive number", source=source,
                              key=f"limits.{f.name}")
    if settings.server.workers < 1:
        raise ConfigError("must be at least 1", source=source, key="server.workers")
    _check_observability(settings, source)
    return settings


def _check_observability(settings: Settings, source: str) -> None:
    if settings.logging.level.lower() not in LOG_LEVELS:
        raise ConfigError(f"must be one of {', '.join(LOG_LEVELS)}, not "
                          f"{settings.logging.level!r}", source=source, key="logging.level")
    if settings.logging.format not in LOG_FORMATS:
        raise ConfigError(f"must be one of {', '.join(LOG_FORMATS)}, not "
                          f"{settings.logging.format!r}", source=source, key="logging.format")
    endpoint = settings.telemetry.otlp_endpoint
    if endpoint is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", endpoint):
        raise ConfigError(f"must be an http:// or https:// URL (the OTLP/HTTP receiver, e.g. "
                          f"http://127.0.0.1:4318), not {endpoint!r}", source=source,
                          key="telemetry.otlp_endpoint")
    if settings.telemetry.export_interval_s <= 0:
        raise ConfigError("must be a positive number of seconds", source=source,
                          key="telemetry.export_interval_s")
    if not settings.telemetry.service_name.strip():
        raise ConfigError("must not be empty", source=source, key="telemetry.service_name")


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
            name = _token_name(item["name"], source, f"{key}.name") if "name" in item else None
            tokens.append(AdminToken(token=token, role=role, name=name))
    return tuple(tokens)


def _token_name(value: Any, source: str, key: str) -> str:
    name = _str(value, source, key).strip()
    if not 1 <= len(name) <= 100:
        raise ConfigError("a token's name must be 1-100 characters (who holds the token)",
                          source=source, key=key)
    return name


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
        if provider != "stand-in" and not item.get("base_url") and "endpoints" not in item:
            raise ConfigError(f"a {provider} route needs base_url (one server) or endpoints "
                              "(a pool)", source=source, key=f"{key}.base_url")
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
        if item.get("api") is not None:
            kw["api"] = _route_api(item["api"], provider, source, f"{key}.api")
        if item.get("accepts") is not None:
            kw["accepts"] = _accepts(item["accepts"], source, f"{key}.accepts")
        kw.update(_pool(item, provider, source, key))
        if item.get("price") is not None:
            try:
                kw["price"] = parse_price(item["price"])
            except QuotaError as exc:
                raise ConfigError(exc.message, source=source,
                                  key=f"{key}.{exc.field}") from None
        if kw["name"] in {r.name for r in routes}:
            raise ConfigError(f"route {kw['name']!r} is defined twice", source=source,
                              key=f"{key}.name")
        routes.append(RouteConfig(**kw))
    return tuple(routes)


def _pool(item: dict[str, Any], provider: str, source: str, key: str) -> dict[str, Any]:
    """A route's pool keys (`endpoints`, `balance`, `health`) and its `capacity`."""
    kw: dict[str, Any] = {}
    if item.get("capacity") is not None:
        kw["capacity"] = CapacityConfig(**_positive_numbers(
            item["capacity"], CapacityConfig, source, f"{key}.capacity"))
    if "endpoints" not in item:
        for k in ("balance", "health"):
            if k in item:
                raise ConfigError("applies only to a pool; list the servers under endpoints",
                                  source=source, key=f"{key}.{k}")
        return kw
    if item.get("base_url"):
        raise ConfigError("a route takes either base_url (one server) or endpoints (a pool), "
                          "not both; remove one", source=source, key=f"{key}.endpoints")
    if provider not in ("openai", "anthropic"):
        raise ConfigError(f"a pool needs provider openai or anthropic, not {provider!r}",
                          source=source, key=f"{key}.provider")
    value = item["endpoints"]
    if not isinstance(value, list) or not value:
        raise ConfigError("an empty pool: list at least one server, e.g. "
                          "[{base_url: http://gpu-node-1:8000/v1, max_concurrency: 64}]",
                          source=source, key=f"{key}.endpoints")
    endpoints: list[EndpointConfig] = []
    seen: dict[str, int] = {}
    for j, ep in enumerate(value):
        at = f"{key}.endpoints[{j}]"
        if isinstance(ep, str):
            ep = {"base_url": ep}
        if not isinstance(ep, dict) or not ep.get("base_url"):
            raise ConfigError("needs base_url (and optionally max_concurrency)", source=source,
                              key=at)
        unknown = sorted(set(ep) - {"base_url", "max_concurrency"})
        if unknown:
            raise ConfigError("unknown key; a pool server takes base_url and max_concurrency",
                              source=source, key=f"{at}.{unknown[0]}")
        url = _str(ep["base_url"], source, f"{at}.base_url").rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"must be an http:// or https:// URL, not {url!r}",
                              source=source, key=f"{at}.base_url")
        if url in seen:
            raise ConfigError(f"duplicate server {url} (also endpoints[{seen[url]}]); list "
                              "each server once", source=source, key=f"{at}.base_url")
        seen[url] = j
        limit = ep.get("max_concurrency")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 1):
            raise ConfigError(f"must be a whole number of requests, 1 or more, not {limit!r} "
                              "(leave it out for no limit)", source=source,
                              key=f"{at}.max_concurrency")
        endpoints.append(EndpointConfig(base_url=url, max_concurrency=limit))
    kw["endpoints"] = tuple(endpoints)
    balance = item.get("balance", "least_outstanding")
    if balance not in BALANCES:
        raise ConfigError(f"must be one of {', '.join(BALANCES)}, not {balance!r}",
                          source=source, key=f"{key}.balance")
    kw["balance"] = balance
    health = item.get("health")
    if health is not None:
        if not isinstance(health, dict):
            raise ConfigError("must be a mapping {path: /health, interval_s: 5}",
                              source=source, key=f"{key}.health")
        unknown = sorted(set(health) - {"path", "interval_s", "metrics_path"})
        if unknown:
            raise ConfigError("unknown key; health takes path, interval_s and metrics_path",
                              source=source, key=f"{key}.health.{unknown[0]}")
        out: dict[str, Any] = {}
        for k in ("path", "metrics_path"):
            if health.get(k) is not None:
                out[k] = _str(health[k], source, f"{key}.health.{k}")
                if not out[k].startswith("/"):
                    raise ConfigError(f"must be a path on the server's host, starting with /, "
                                      f"e.g. /{out[k]}", source=source, key=f"{key}.health.{k}")
        if health.get("interval_s") is not None:
            interval = _coerce(health["interval_s"], 1.0, source, f"{key}.health.interval_s")
            if interval < 0:
                raise ConfigError("must be 0 (no active health check) or a positive number of "
                                  "seconds", source=source, key=f"{key}.health.interval_s")
            out["interval_s"] = interval
        kw["health"] = HealthConfig(**out)
    return kw


def _positive_numbers(value: Any, cls: type, source: str, key: str) -> dict[str, float]:
    names = [f.name for f in dataclasses.fields(cls)]
    if not isinstance(value, dict):
        raise ConfigError(f"must be a mapping with {' and/or '.join(names)}", source=source,
                          key=key)
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise ConfigError(f"unknown key; {key.rsplit('.', 1)[-1]} takes {', '.join(names)}",
                          source=source, key=f"{key}.{unknown[0]}")
    out: dict[str, float] = {}
    for name in names:
        if value.get(name) is None:
            continue
        number = _coerce(value[name], 1.0, source, f"{key}.{name}")
        if number <= 0:
            raise ConfigError(f"must be a positive number, not {value[name]!r} (leave it out "
                              "if it is not declared)", source=source, key=f"{key}.{name}")
        out[name] = number
    return out


def _route_api(value: Any, provider: str, source: str, key: str) -> str:
    if value not in ROUTE_APIS:
        raise ConfigError(f"must be one of {', '.join(ROUTE_APIS)}, not {value!r}",
                          source=source, key=key)
    if value == "responses" and provider != "openai":
        raise ConfigError(f"only an openai route can speak the Responses API (this one is "
                          f"{provider})", source=source, key=key)
    return str(value)


def _accepts(value: Any, source: str, key: str) -> Accepts:
    fields = {f.name for f in dataclasses.fields(Accepts)}
    if not isinstance(value, dict):
        raise ConfigError(f"must be a mapping of {', '.join(sorted(fields))} to true/false",
                          source=source, key=key)
    for name, flag in value.items():
        if name not in fields:
            raise ConfigError(f"unknown key; accepts takes {', '.join(sorted(fields))}",
                              source=source, key=f"{key}.{name}")
        if not isinstance(flag, bool):
            raise ConfigError(f"must be true or false, not {flag!r}", source=source,
                              key=f"{key}.{name}")
    return Accepts(**value)


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


def _quotas(value: Any, source: str, routes: set[str]) -> tuple[Quota, ...]:
    """The `quotas:` list, each entry as `POST /admin/v1/quotas` takes it."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError("must be a list of quotas ({scope: ..., requests_per_minute: ...})",
                          source=source, key="quotas")
    out: list[Quota] = []
    for i, item in enumerate(value):
        try:
            quota = parse_quota(item, routes=routes)
        except QuotaError as exc:
            field = "" if exc.field == "quota" else f".{exc.field}"
            raise ConfigError(exc.message, source=source, key=f"quotas[{i}]{field}") from None
        if quota.id in {q.id for q in out}:
            raise ConfigError(f"quota {quota.id!r} is listed twice", source=source,
                              key=f"quotas[{i}]")
        out.append(quota)
    return tuple(out)
