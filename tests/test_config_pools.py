"""A route served by a pool (`endpoints:`): its keys, defaults, and every bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harbourgate.cli import main
from harbourgate.config import ConfigError, EndpointConfig, HealthConfig, load

POOL = """
routes:
  - name: qwen-local
    provider: openai
    endpoints:
      - {base_url: http://gpu-node-1.cluster.local:8000/v1, max_concurrency: 64}
      - {base_url: "http://gpu-node-2.cluster.local:8000/v1/", max_concurrency: 32}
      - http://gpu-node-3.cluster.local:8000/v1
    balance: round_robin
    health: {path: /healthz, interval_s: 2.5, metrics_path: /metrics}
    capacity: {requests_per_second: 40, tokens_per_second: 20000}
    origin: CN
    hosting: HK
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "harbourgate.yaml"
    path.write_text(text)
    return path


def test_a_pool_route(tmp_path: Path) -> None:
    route = load(write(tmp_path, POOL), environ={}).routes[0]
    assert route.is_pool and route.base_url is None
    assert route.endpoints == (
        EndpointConfig("http://gpu-node-1.cluster.local:8000/v1", 64),
        EndpointConfig("http://gpu-node-2.cluster.local:8000/v1", 32),
        EndpointConfig("http://gpu-node-3.cluster.local:8000/v1", None))
    assert route.balance == "round_robin"
    assert route.health == HealthConfig("/healthz", 2.5, "/metrics")
    assert (route.capacity.requests_per_second, route.capacity.tokens_per_second) == (40, 20000)


def test_pool_defaults_and_capacity_on_any_route(tmp_path: Path) -> None:
    s = load(write(tmp_path, """
routes:
  - {name: qwen-local, provider: openai, endpoints: [http://a:8000/v1]}
  - {name: fable-5, provider: openai, base_url: http://b/v1,
     capacity: {requests_per_second: 5}}
"""), environ={})
    pool, single = s.routes
    assert (pool.balance, pool.health) == ("least_outstanding", HealthConfig("/health", 5.0))
    assert pool.capacity.requests_per_second is None
    assert not single.is_pool and single.capacity.requests_per_second == 5
    assert single.capacity.tokens_per_second is None


def test_the_embedded_default_declares_the_local_capacity() -> None:
    route = load(None, environ={}).route("qwen-local")
    assert route is not None and route.capacity.requests_per_second == 40


BAD = [
    ("{name: q, provider: openai, base_url: http://a/v1, endpoints: [http://b/v1]}",
     "routes[0].endpoints", "either base_url (one server) or endpoints (a pool), not both"),
    ("{name: q, provider: openai, endpoints: []}", "routes[0].endpoints", "an empty pool"),
    ("{name: q, provider: openai, endpoints: null}", "routes[0].endpoints", "an empty pool"),
    ("{name: q, provider: openai, endpoints: [http://a/v1, 'http://a/v1/']}",
     "routes[0].endpoints[1].base_url", "duplicate server http://a/v1 (also endpoints[0])"),
    ("{name: q, provider: openai, endpoints: [{base_url: http://a/v1, max_concurrency: -4}]}",
     "routes[0].endpoints[0].max_concurrency", "1 or more, not -4"),
    ("{name: q, provider: openai, endpoints: [{base_url: http://a/v1, max_concurrency: 0}]}",
     "routes[0].endpoints[0].max_concurrency", "1 or more"),
    ("{name: q, provider: openai, endpoints: [{base_url: http://a/v1, max_concurrency: 2.5}]}",
     "routes[0].endpoints[0].max_concurrency", "whole number"),
    ("{name: q, provider: openai, endpoints: [{max_concurrency: 4}]}",
     "routes[0].endpoints[0]", "needs base_url"),
    ("{name: q, provider: openai, endpoints: [{base_url: http://a/v1, weight: 2}]}",
     "routes[0].endpoints[0].weight", "unknown key"),
    ("{name: q, provider: openai, endpoints: [gpu-node-1:8000]}",
     "routes[0].endpoints[0].base_url", "http:// or https://"),
    ("{name: q, provider: stand-in, endpoints: [http://a/v1]}",
     "routes[0].provider", "a pool needs provider openai or anthropic"),
    ("{name: q, provider: openai, endpoints: [http://a/v1], balance: random}",
     "routes[0].balance", "least_outstanding, round_robin"),
    ("{name: q, provider: openai, base_url: http://a/v1, balance: round_robin}",
     "routes[0].balance", "applies only to a pool"),
    ("{name: q, provider: openai, endpoints: [http://a/v1], health: {interval_s: -1}}",
     "routes[0].health.interval_s", "0 (no active health check) or a positive"),
    ("{name: q, provider: openai, endpoints: [http://a/v1], health: {path: health}}",
     "routes[0].health.path", "starting with /"),
    ("{name: q, provider: openai, endpoints: [http://a/v1], health: {timeout: 3}}",
     "routes[0].health.timeout", "unknown key"),
    ("{name: q, provider: openai, endpoints: [http://a/v1], health: yes}",
     "routes[0].health", "must be a mapping"),
    ("{name: q, provider: openai, endpoints: [http://a/v1], "
     "capacity: {requests_per_second: -40}}",
     "routes[0].capacity.requests_per_second", "must be a positive number, not -40"),
    ("{name: q, provider: openai, endpoints: [http://a/v1], capacity: {tokens_per_second: 0}}",
     "routes[0].capacity.tokens_per_second", "must be a positive number"),
    ("{name: q, provider: openai, endpoints: [http://a/v1], capacity: {gpus: 8}}",
     "routes[0].capacity.gpus", "unknown key; capacity takes requests_per_second"),
    ("{name: q, provider: openai, endpoints: [http://a/v1], capacity: 40}",
     "routes[0].capacity", "must be a mapping"),
    ("{name: q, provider: openai}", "routes[0].base_url", "base_url (one server) or endpoints"),
]


@pytest.mark.parametrize(("route", "key", "fragment"), BAD)
def test_bad_pool_names_file_key_and_fix(tmp_path: Path, route: str, key: str,
                                         fragment: str) -> None:
    path = write(tmp_path, f"routes:\n  - {route}\n")
    with pytest.raises(ConfigError) as exc:
        load(path, environ={})
    assert exc.value.key == key
    assert str(path) in str(exc.value) and fragment in str(exc.value)


@pytest.mark.parametrize(("route", "key", "fragment"), BAD[:5])
def test_serve_exits_2_on_a_bad_pool(tmp_path: Path, route: str, key: str,
                                     fragment: str) -> None:
    path = write(tmp_path, f"data_dir: {tmp_path / 'data'}\nroutes:\n  - {route}\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    assert str(path) in result.output and key in result.output and fragment in result.output
