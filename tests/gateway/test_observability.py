"""The request path speaks: one access line per data-plane request with the facts and none of
the prompt, a request id echoed on every answer and kept in the audit record, upstream
failures, failovers and audit faults logged with their reason."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from harbourgate.gateway import metrics
from harbourgate.observe import logs
from harbourgate.providers.base import UpstreamError
from tests.gateway.doubles import HKID, PHONE, ROUTES, Reply, request, rig

SAFE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
EMAIL = "chan.tai.man@example.hk"
PROMPT = f"Draft a letter to Chan Tai Man, HKID {HKID}, phone {PHONE}, e-mail {EMAIL}."
SECRETS = ("A123456", "9123", "4567", "chan.tai.man", "example.hk", "Chan Tai Man", "HKID",
           "Draft a letter")
CHAT = "/v1/chat/completions"


def run(coro: Any) -> Reply:
    return asyncio.run(coro)


def chat(model: str = "fable-5", text: str = PROMPT, **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **kw}


class Captured:
    """What our loggers wrote, formatted as `serve` formats it."""

    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(formatter)

    @property
    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def access(self) -> list[str]:
        return [line for line in self.lines if "harbourgate.access" in line]


@pytest.fixture(params=["text", "json"])
def captured(request: pytest.FixtureRequest) -> Iterator[Captured]:
    out = Captured(logs.JsonFormatter() if request.param == "json" else logs.TextFormatter())
    names = (logs.ACCESS_LOGGER, "harbourgate.gateway")
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(out.handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False
    metrics.configure(r.name for r in ROUTES)
    try:
        yield out
    finally:
        for lg, (level, propagate) in zip(loggers, saved, strict=True):
            lg.removeHandler(out.handler)
            lg.setLevel(level)
            lg.propagate = propagate
        metrics.configure([])


def fields(line: str) -> dict[str, str]:
    """An access line's fields, from either format."""
    if line.startswith("{"):
        return {k: "-" if v is None else str(v) for k, v in json.loads(line).items()}
    return dict(part.split("=", 1) for part in line.split(" ") if "=" in part)


def test_an_access_line_per_request_and_none_of_the_prompt(captured: Captured) -> None:
    """A prompt holding an HKID, a phone number and an e-mail address, sent as the prompt and
    as a made-up model name: the access lines carry the facts, and none of it."""
    r = rig()
    ok = run(request(r.gateway, "POST", CHAT, chat(),
                     headers={"x-harbourgate-data-origin": "HK"}))
    refused = run(request(r.gateway, "POST", CHAT, chat(model=PROMPT)))
    streamed = run(request(r.gateway, "POST", CHAT, chat(stream=True)))
    assert (ok.status, refused.status, streamed.status) == (200, 404, 200)
    lines = captured.access()
    assert len(lines) == 3
    text = "\n".join(captured.lines)
    for secret in SECRETS:
        assert secret not in text
    first, second, third = (fields(line) for line in lines)
    assert first["request_id"] == ok.headers["x-request-id"]
    assert first["audit_id"] == ok.headers["x-harbourgate-audit"]
    assert (first["application"], first["endpoint"], first["model"], first["served"]) == (
        "acme-research", CHAT, "fable-5", "fable-5")
    assert (first["decision"], first["status"], first["code"]) == ("allow", "200", "ok")
    assert float(first["overhead_ms"]) >= 0 and float(first["upstream_ms"]) >= 0
    assert (second["model"], second["served"], second["decision"], second["status"],
            second["code"]) == ("other", "none", "deny", "404", "model_not_found")
    assert second["audit_id"] == refused.headers["x-harbourgate-audit"]
    assert third["request_id"] == streamed.headers["x-request-id"]
    assert (third["served"], third["status"]) == ("fable-5", "200")


def test_a_request_id_is_echoed_on_every_answer_and_kept_in_the_audit_record(
        captured: Captured) -> None:
    r = rig()
    sent = {"x-request-id": "trace-7f3a:web/1"}
    ok = run(request(r.gateway, "POST", CHAT, chat(), headers=sent))
    refused = run(request(r.gateway, "POST", CHAT, chat(model="nope"), headers=sent))
    streamed = run(request(r.gateway, "POST", CHAT, chat(stream=True), headers=sent))
    unknown_key = run(request(r.gateway, "POST", CHAT, chat(), key="sk-wrong", headers=sent))
    no_key = run(request(r.gateway, "POST", CHAT, chat(), key=None, headers=sent))
    listed = run(request(r.gateway, "GET", "/v1/models", headers=sent))
    for reply in (ok, refused, streamed, unknown_key, no_key, listed):
        assert reply.headers["x-request-id"] == "trace-7f3a:web/1"
    assert (unknown_key.status, no_key.status) == (401, 401)
    decisions = [rec for rec in r.audit.records if rec["kind"] != "usage"]  # not follow-ups
    assert [rec["x_request_id"] for rec in decisions] == ["trace-7f3a:web/1"] * 4
    lines = [fields(line) for line in captured.access()]
    assert len(lines) == 6 and {f["request_id"] for f in lines} == {"trace-7f3a:web/1"}
    unidentified = lines[3]
    assert (unidentified["status"], unidentified["code"], unidentified["audit_id"],
            unidentified["application"]) == ("401", "invalid_api_key", "-", "-")
    # without one, each request gets its own
    a = run(request(r.gateway, "POST", CHAT, chat()))
    b = run(request(r.gateway, "POST", CHAT, chat(), key=None))
    assert SAFE_ID.fullmatch(a.headers["x-request-id"])
    assert a.headers["x-request-id"] != b.headers["x-request-id"]


@pytest.mark.parametrize("raw", [
    "has space", "x" * 129, "<script>alert(1)</script>", "id\u00e9", "a;b", "",
    f"HKID {HKID}"])
def test_a_malformed_request_id_is_replaced_never_echoed(raw: str) -> None:
    r = rig()
    head = [(b"x-request-id", raw.encode())]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": json.dumps(chat(text="hello")).encode(),
                "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for auth in ([(b"authorization", b"Bearer sk-hg-test-key-0001")], []):
        sent.clear()
        scope = {"type": "http", "method": "POST", "path": CHAT, "headers": head + auth}
        asyncio.run(r.gateway(scope, receive, send))
        echoed = dict(sent[0]["headers"])[b"x-request-id"].decode()
        assert echoed != raw and SAFE_ID.fullmatch(echoed)
        assert raw not in b"".join(m.get("body", b"") for m in sent).decode() or not raw
    assert r.audit.records[0]["x_request_id"] not in (raw, None)


def test_an_upstream_failure_and_the_failover_are_logged_without_the_prompt(
        captured: Captured) -> None:
    r = rig()
    r.upstreams["fable-5"].failures.append(UpstreamError(
        f"fable-5 answered 400: your prompt {PROMPT} is bad", status=502,
        code="upstream_error"))
    reply = run(request(r.gateway, "POST", CHAT, chat(), headers={"x-request-id": "req-9"}))
    assert reply.status == 200 and reply.headers["x-harbourgate-model"] == "mythos-5"
    warnings = [line for line in captured.lines if "WARNING" in line]
    assert len(warnings) == 1
    assert "upstream fable-5 failed: upstream_error" in warnings[0]
    assert "failing over to mythos-5" in warnings[0] and "req-9" in warnings[0]
    for secret in SECRETS:
        assert secret not in "\n".join(captured.lines)
    served = fields(captured.access()[0])
    assert (served["decision"], served["served"]) == ("reroute", "mythos-5")


def test_the_last_upstream_failure_says_no_failover(captured: Captured) -> None:
    r = rig()
    for name in ("fable-5", "mythos-5"):
        r.upstreams[name].failures.append(UpstreamError("refused", code="upstream_error"))
    reply = run(request(r.gateway, "POST", CHAT, chat(model="mythos-5"),
                        headers={"x-harbourgate-fallback": "none"}))
    assert reply.status == 502
    warnings = [line for line in captured.lines if "WARNING" in line]
    assert len(warnings) == 1 and "upstream mythos-5 failed: upstream_error" in warnings[0]
    assert "no failover" in warnings[0]
    assert fields(captured.access()[0])["code"] == "upstream_error"


def test_an_audit_fault_is_logged_as_an_error_and_answered_503(captured: Captured) -> None:
    r = rig()
    r.audit.broken = True
    reply = run(request(r.gateway, "POST", CHAT, chat(), headers={"x-request-id": "req-503"}))
    assert reply.status == 503 and reply.headers["x-request-id"] == "req-503"
    errors = [line for line in captured.lines if "ERROR" in line]
    assert len(errors) == 1 and "audit record not committed" in errors[0]
    assert "req-503" in errors[0] and "disk full" in errors[0]
    line = fields(captured.access()[0])
    assert (line["status"], line["code"], line["audit_id"]) == ("503", "audit_unavailable",
                                                                "-")


def test_logging_access_false_writes_no_access_line(captured: Captured) -> None:
    logging.getLogger(logs.ACCESS_LOGGER).setLevel(logging.WARNING)  # as access: false sets
    r = rig()
    assert run(request(r.gateway, "POST", CHAT, chat())).status == 200
    assert captured.access() == []
