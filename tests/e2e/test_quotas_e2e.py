"""Quotas and usage against running `harbourgate serve` processes, with the official SDKs.

Per-minute windows follow the wall clock here, so each scenario starts with enough of the
minute left and is run again in the next minute if the minute turned over while it ran
(a readiness wait, not a speed limit). The clock-driven cases (a budget resetting at the
period boundary, refunds) are in tests/gateway/test_quotas.py with an injected clock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import httpx
import openai
import orjson
import pytest
import yaml

from tests.e2e import conftest
from tests.e2e.conftest import (
    ADMIN_TOKEN,
    Gateway,
    Process,
    free_port,
    gateway_config,
    start,
    start_gateway,
)

pytestmark = pytest.mark.e2e

T = TypeVar("T")
HELLO = [{"role": "user", "content": "hello from the harbour"}]


def in_one_minute(scenario: Callable[[], T], *, room_s: float = 20.0) -> T:
    """Run `scenario` inside one wall-clock minute: start with at least `room_s` of it
    left, and run it again in a later minute if the minute turned over meanwhile."""
    for _ in range(5):
        left = 60 - time.time() % 60
        if left < room_s:
            time.sleep(left + 0.05)
        minute = int(time.time() // 60)
        result = scenario()
        if int(time.time() // 60) == minute:
            return result
    pytest.fail("the scenario never fitted in one minute (five tries)")


@pytest.fixture(scope="module")
def metered(standin: Process, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose config allocates participant `beta` two requests a minute on
    qwen-local and one on fable-5, rerouting over either."""
    workdir = tmp_path_factory.mktemp("quotas")
    apps = [{"id": app, "participant": part, "name": app, "use_cases": ["research.b2b"],
             "data_origin": "HK", "model_preference": prefs}
            for app, part, prefs in (("limited-openai", "acme", ["fable-5"]),
                                     ("limited-anthropic", "acme", ["fable-5"]),
                                     ("beta-app", "beta", ["qwen-local", "fable-5"]),
                                     ("streamer", "gamma", ["fable-5", "cut-5"]))]
    config = gateway_config(standin.url, workdir / "data", sandbox={
        "participants": [{"id": p, "name": p, "jurisdiction": "HK"}
                         for p in ("acme", "beta", "gamma")],
        "applications": apps,
    }, quotas=[
        {"id": "beta-qwen", "scope": {"participant": "beta", "route": "qwen-local"},
         "requests_per_minute": 2, "on_exhausted": "reroute"},
        {"id": "beta-fable", "scope": {"participant": "beta", "route": "fable-5"},
         "requests_per_minute": 1, "on_exhausted": "reroute"},
    ])
    process = start_gateway(config, workdir)
    gw = Gateway(process, Path(process.extra["config"]), {})
    for app in apps:
        r = gw.admin("POST", f"/applications/{app['id']}/keys")
        assert r.status_code in (200, 201), r.text
        gw.keys[app["id"]] = r.json()["key"]
        gw.keys[app["id"] + ":id"] = r.json()["id"]
    gw.keys["data_dir"] = str(workdir / "data")
    yield gw
    process.stop()


def limit_key(gw: Gateway, app: str, per_minute: int) -> str:
    """A per-minute quota on the application's key, set through the admin API."""
    quota_id = f"key-limit-{uuid.uuid4().hex[:8]}"
    r = gw.admin("POST", "/quotas", json={"id": quota_id, "scope": {"key": gw.keys[app + ":id"]},
                                          "requests_per_minute": per_minute})
    assert r.status_code == 201, r.text
    assert r.json()["audit_id"]
    return quota_id


def test_a_key_over_its_per_minute_limit_gets_the_openai_sdks_rate_limit_error(
        metered: Gateway) -> None:
    quota_id = limit_key(metered, "limited-openai", 2)
    client = openai.OpenAI(base_url=metered.url + "/v1",
                           api_key=metered.keys["limited-openai"], max_retries=0, timeout=30)

    def scenario() -> tuple[list[Any], BaseException | None]:
        answers = [client.chat.completions.with_raw_response.create(model="fable-5",
                                                                    messages=HELLO)
                   for _ in range(2)]
        try:
            client.chat.completions.create(model="fable-5", messages=HELLO)
        except openai.RateLimitError as exc:
            return answers, exc
        return answers, None

    answers, refused = in_one_minute(scenario)
    for raw, remaining in zip(answers, ("1", "0"), strict=True):
        assert raw.parse().choices[0].message.content
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-remaining-requests"] == remaining
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        assert "x-ratelimit-limit-tokens" not in raw.headers  # no token limit applies
    assert isinstance(refused, openai.RateLimitError)
    assert refused.status_code == 429 and refused.code == "quota_exceeded"
    assert 1 <= int(refused.response.headers["retry-after"]) <= 60
    error = refused.response.json()["error"]
    assert error["quota"] == quota_id and error["type"] == "rate_limit_error"
    assert f"quota {quota_id!r} is exhausted: 2 requests per minute" in error["message"]
    assert refused.response.headers["x-ratelimit-remaining-requests"] == "0"
    entry = metered.admin("GET", f"/audit/entries/{error['audit_id']}").json()
    record = entry["record"]
    assert (record["status"], record["code"], record["quota"]) == (429, "quota_exceeded",
                                                                   quota_id)


def test_a_key_over_its_per_minute_limit_gets_the_anthropic_sdks_rate_limit_error(
        metered: Gateway) -> None:
    quota_id = limit_key(metered, "limited-anthropic", 1)
    client = anthropic.Anthropic(base_url=metered.url, api_key=metered.keys["limited-anthropic"],
                                 max_retries=0, timeout=30)

    def scenario() -> tuple[Any, BaseException | None]:
        raw = client.messages.with_raw_response.create(model="fable-5", max_tokens=50,
                                                       messages=HELLO)
        try:
            client.messages.create(model="fable-5", max_tokens=50, messages=HELLO)
        except anthropic.RateLimitError as exc:
            return raw, exc
        return raw, None

    raw, refused = in_one_minute(scenario)
    assert raw.parse().content[0].text
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "1"
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert raw.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert "x-ratelimit-limit-requests" not in raw.headers
    assert isinstance(refused, anthropic.RateLimitError) and refused.status_code == 429
    assert 1 <= int(refused.response.headers["retry-after"]) <= 60
    body = refused.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert body["error"]["code"] == "quota_exceeded" and body["error"]["quota"] == quota_id


def test_a_participant_over_its_allocation_is_rerouted_then_refused(metered: Gateway) -> None:
    client = openai.OpenAI(base_url=metered.url + "/v1", api_key=metered.keys["beta-app"],
                           max_retries=0, timeout=30)

    def scenario() -> tuple[list[Any], BaseException | None]:
        answers = [client.chat.completions.with_raw_response.create(model="qwen-local",
                                                                    messages=HELLO)
                   for _ in range(3)]
        try:
            client.chat.completions.create(model="qwen-local", messages=HELLO)
        except openai.RateLimitError as exc:
            return answers, exc
        return answers, None

    answers, refused = in_one_minute(scenario)
    served = [raw.headers["x-harbourgate-model"] for raw in answers]
    assert served == ["qwen-local", "qwen-local", "fable-5"]
    rerouted = answers[2]
    assert rerouted.headers["x-harbourgate-decision"] == "reroute"
    assert rerouted.headers["x-harbourgate-rerouted-from"] == "qwen-local"
    assert rerouted.headers["x-harbourgate-reroute-reason"] == "quota beta-qwen"
    assert rerouted.headers["x-ratelimit-limit-requests"] == "1"  # fable-5's allocation
    assert "[fable-5]" in rerouted.parse().choices[0].message.content
    assert isinstance(refused, openai.RateLimitError)
    error = refused.response.json()["error"]
    assert error["quota"] == "beta-qwen"
    assert "no other permitted model has room (fable-5: quota 'beta-fable')" in error["message"]


def _follow_ups(data_dir: str, request_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The usage records that refer to these requests, read from the audit log's table."""
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 120
    while len(found) < len(request_ids) and time.monotonic() < deadline:
        conn = sqlite3.connect(f"file:{data_dir}/harbourgate.db?mode=ro", uri=True)
        try:
            for (leaf,) in conn.execute("SELECT leaf FROM audit_entries"):
                record = orjson.loads(bytes(leaf))
                if record.get("kind") == "usage" and record.get("request_id") in request_ids:
                    found[record["request_id"]] = record
        finally:
            conn.close()
        if len(found) < len(request_ids):
            time.sleep(0.2)
    return found


def test_stream_usage_is_recorded_after_the_stream_and_counted(metered: Gateway) -> None:
    client = openai.OpenAI(base_url=metered.url + "/v1", api_key=metered.keys["streamer"],
                           max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(
        model="fable-5", messages=HELLO, stream=True, stream_options={"include_usage": True})
    chunks = list(raw.parse())
    reported = chunks[-1].usage
    assert reported is not None and reported.completion_tokens > 0
    cut = client.chat.completions.with_raw_response.create(
        model="cut-5", messages=HELLO, stream=True,
        extra_headers={"X-Harbourgate-Fallback": "none"})
    with pytest.raises(openai.APIError):
        for _ in cut.parse():
            pass
    ids = [raw.headers["x-harbourgate-audit"], cut.headers["x-harbourgate-audit"]]
    follow_ups = _follow_ups(metered.keys["data_dir"], ids)
    completed, broken = follow_ups[ids[0]], follow_ups[ids[1]]
    assert completed["ended"] == "completed" and broken["ended"] == "cut"
    assert completed["usage"]["input_tokens"] == reported.prompt_tokens
    assert completed["usage"]["output_tokens"] == reported.completion_tokens
    assert completed["model_served"] == "fable-5" and broken["model_served"] == "cut-5"
    rows = metered.admin("GET", "/usage", params={"by": "application", "period": "month"}).json()
    row = next(r for r in rows["data"] if r["application"] == "streamer")
    assert row["requests"] == 2
    for direction in ("input_tokens", "output_tokens"):
        assert row[direction] == completed["usage"][direction] + broken["usage"][direction]


# -- two replicas, one limit ---------------------------------------------------------------

@pytest.mark.postgres
@pytest.mark.redis
def test_two_replicas_admit_exactly_the_limit_of_1000_concurrent_requests(
        standin: Process, postgres_url: str, redis_url: str, tmp_path: Path) -> None:
    quota_id = f"burst-{uuid.uuid4().hex[:8]}"  # fresh counters in the shared Redis
    config = {
        "data_dir": str(tmp_path / "data"), "database_url": postgres_url, "redis_url": redis_url,
        "routes": [{"name": "fable-5", "provider": "openai", "base_url": standin.url + "/v1",
                    "origin": "US", "hosting": "US", "class": "frontier-chat"}],
        "sandbox": {"participants": [{"id": "acme", "name": "Acme", "jurisdiction": "HK"}],
                    "applications": [{"id": "burst", "participant": "acme", "name": "Burst",
                                      "use_cases": ["research.b2b"], "data_origin": "HK",
                                      "model_preference": ["fable-5"]}]},
        "quotas": [{"id": quota_id, "scope": {"application": "burst"},
                    "requests_per_minute": 100}],
    }
    path = tmp_path / "harbourgate.yaml"
    path.write_text(yaml.safe_dump(config))
    replicas: list[Process] = []
    try:
        for name in ("a", "b"):  # one after the other: the first creates the signing key
            port = free_port()
            replicas.append(start(
                [*conftest.HARBOURGATE, "serve", "--config", str(path), "--port", str(port)],
                port=port, ready_path="/readyz", log=tmp_path / f"replica-{name}.log",
                env={"HARBOURGATE_ADMIN_TOKEN": ADMIN_TOKEN}))
        for replica in replicas:
            assert httpx.get(replica.url + "/readyz", timeout=30).json()["quotas"] == \
                "ok (redis)"
        key = httpx.post(f"{replicas[0].url}/admin/v1/applications/burst/keys",
                         headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
                         timeout=30).json()["key"]
        deadline = time.monotonic() + 120  # the key reaches replica b (announcement or poll)
        while time.monotonic() < deadline and httpx.get(
                replicas[1].url + "/v1/models", headers={"authorization": f"Bearer {key}"},
                timeout=30).status_code == 401:
            time.sleep(0.2)

        async def burst() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=0)
            async with httpx.AsyncClient(limits=limits, timeout=120) as http:
                return await asyncio.gather(*(
                    http.post(replicas[i % 2].url + "/v1/chat/completions",
                              headers={"authorization": f"Bearer {key}"},
                              json={"model": "fable-5", "max_tokens": 5,
                                    "messages": [{"role": "user", "content": f"burst {i}"}]})
                    for i in range(1000)))

        replies = in_one_minute(lambda: asyncio.run(burst()), room_s=50)
        statuses = [r.status_code for r in replies]
        admitted = [r for r in replies if r.status_code == 200]
        assert len(admitted) == 100, {s: statuses.count(s) for s in set(statuses)}
        assert statuses.count(429) == 900
        # each admitted request holds its own place in the count: 99 left ... 0 left
        assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in admitted) == \
            list(range(100))
        assert {r.json()["error"]["quota"] for r in replies if r.status_code == 429} == \
            {quota_id}
        assert {r.headers["x-harbourgate-model"] for r in admitted} == {"fable-5"}
    finally:
        for replica in replicas:
            replica.stop()
