"""What the gateway's in-process tests run against: an in-memory snapshot (no database), an
in-memory audit sink, a scripted upstream that follows CONTRACT.md in all three API shapes,
and an ASGI driver (no server).

The scripted upstream answers by echoing the first prose string of the request, as text and
as a tool call's arguments, so whatever pseudonym it received comes back in every place a
model can write; its streams split that text into three-character deltas, so tokens are cut
across events.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, SimpleNamespace
from typing import Any

import orjson

from harbourgate import policy
from harbourgate.config import Limits, RouteConfig, Settings
from harbourgate.enforce import model_facts
from harbourgate.gateway.app import Gateway
from harbourgate.gateway.content import request_texts
from harbourgate.identity.model import ApiKey, Application, Participant, Registry
from harbourgate.privacy import Scanner
from harbourgate.providers.base import Shape, StreamEvent, UpstreamError
from harbourgate.providers.sse import SSEDecoder
from harbourgate.quotas import QuotaGate, QuotaSet
from harbourgate.runtime import Caller, Snapshot, application_facts, load_bundle, participant_facts
from harbourgate.shapes import Usage

KEY = "sk-hg-test-key-0001"
SUSPENDED_KEY = "sk-hg-test-key-0002"
HKID = "A123456(3)"
PHONE = "+852 9123 4567"


def route(name: str, **kw: Any) -> RouteConfig:
    return RouteConfig(name=name, provider="scripted", origin=kw.pop("origin", "US"),
                       hosting=kw.pop("hosting", "US"), **kw)


ROUTES = (route("fable-5"), route("mythos-5"), route("lantau-7", origin="HK", hosting="HK"),
          route("embed-small", capability_class="embedding-small"))


_BUNDLE: policy.Bundle | None = None


def snapshot(routes: tuple[RouteConfig, ...] = ROUTES, quotas: QuotaSet | None = None
             ) -> Snapshot:
    """One participant and application (data from HK, preferring fable-5, mythos-5), with a
    live key; and a suspended participant's key. `quotas`: those in force (none)."""
    global _BUNDLE
    if _BUNDLE is None:
        _BUNDLE = load_bundle(Settings())
    people = {"acme": Participant("acme", "Acme", "HK"),
              "shady": Participant("shady", "Shady", "HK", status="suspended")}
    apps = {"acme-research": Application("acme-research", "acme", "Acme research",
                                         use_cases=("research.b2b",), data_origin="HK",
                                         model_preference=("fable-5", "mythos-5")),
            "shady-app": Application("shady-app", "shady", "Shady", use_cases=("research.b2b",),
                                     data_origin="HK")}
    keys = {}
    for i, (secret, app) in enumerate(((KEY, "acme-research"), (SUSPENDED_KEY, "shady-app"))):
        digest = hashlib.sha256(secret.encode()).hexdigest()
        keys[digest] = ApiKey(f"key-{i}", app, digest, secret[:8], "2026-01-01T00:00:00Z")
    reg = Registry(version=1, participants=MappingProxyType(people),
                   applications=MappingProxyType(apps), keys=MappingProxyType(keys),
                   approvals=MappingProxyType({}))
    callers = {}
    for digest, key in keys.items():
        app = apps[key.application_id]
        part = people[app.participant_id]
        callers[digest] = Caller(key, app, part, application_facts(app, reg),
                                 participant_facts(part))
    compiled = policy.compile(_BUNDLE, [])
    return Snapshot(version=1, routes=MappingProxyType({r.name: r for r in routes}),
                    facts=MappingProxyType({r.name: model_facts(r) for r in routes}),
                    registry=reg, callers=MappingProxyType(callers), policy=compiled,
                    directives=(), policy_header=str(compiled.version),
                    quotas=quotas or QuotaSet())


class MemoryAudit:
    """The audit sink in memory; `broken` makes every append fail, as a full disk would."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.broken = False

    async def append(self, record: dict[str, Any], entry_id: str | None = None) -> str:
        if self.broken:
            raise OSError("disk full")
        self.records.append(record)
        return f"entry-{len(self.records)}"


# -- the scripted upstream -------------------------------------------------------------------

def _chunks(text: str, size: int = 3) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def answer(shape: Shape, model: str, text: str) -> dict[str, Any]:
    """A plain answer in `shape`: `text` as message text and inside a tool call."""
    args = orjson.dumps({"q": text}).decode()
    if shape == "anthropic":
        return {"id": "msg_1", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text},
                            {"type": "tool_use", "id": "toolu_1", "name": "lookup",
                             "input": {"q": text}}],
                "stop_reason": "tool_use", "stop_sequence": None,
                "usage": {"input_tokens": 7, "output_tokens": 5, "cache_read_input_tokens": 2}}
    if shape == "responses":
        return {"id": "resp_1", "object": "response", "created_at": 0, "status": "completed",
                "model": model, "output": [
                    {"type": "message", "id": "msg_1", "role": "assistant",
                     "status": "completed",
                     "content": [{"type": "output_text", "text": text, "annotations": []}]},
                    {"type": "function_call", "id": "fc_1", "call_id": "call_1",
                     "name": "lookup", "arguments": args, "status": "completed"}],
                "usage": {"input_tokens": 7, "output_tokens": 5, "total_tokens": 12,
                          "input_tokens_details": {"cached_tokens": 2},
                          "output_tokens_details": {"reasoning_tokens": 1}}}
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": text, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "lookup", "arguments": args}}]}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12,
                      "prompt_tokens_details": {"cached_tokens": 2}}}


def stream_events(shape: Shape, model: str, text: str) -> list[StreamEvent]:
    """The same answer as a stream, text and arguments in three-character deltas."""
    args = orjson.dumps({"q": text}).decode()
    if shape == "anthropic":
        out = [{"type": "message_start", "message": {
                    "id": "msg_1", "type": "message", "role": "assistant", "model": model,
                    "content": [], "stop_reason": None, "usage": {"input_tokens": 7,
                                                                  "output_tokens": 0}}},
               {"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}]
        out += [{"type": "content_block_delta", "index": 0,
                 "delta": {"type": "text_delta", "text": c}} for c in _chunks(text)]
        out += [{"type": "content_block_stop", "index": 0},
                {"type": "content_block_start", "index": 1, "content_block": {
                    "type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}}]
        out += [{"type": "content_block_delta", "index": 1,
                 "delta": {"type": "input_json_delta", "partial_json": c}}
                for c in _chunks(args)]
        out += [{"type": "content_block_stop", "index": 1},
                {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                 "usage": {"output_tokens": 5}},
                {"type": "message_stop"}]
        return [StreamEvent(e["type"], e) for e in out]
    if shape == "responses":
        full = answer("responses", model, text)
        message, call = full["output"]
        out = [{"type": "response.created", "response": {**full, "status": "in_progress",
                                                         "output": []}},
               {"type": "response.output_item.added", "output_index": 0,
                "item": {**message, "content": [], "status": "in_progress"}},
               {"type": "response.content_part.added", "output_index": 0, "content_index": 0,
                "item_id": "msg_1", "part": {"type": "output_text", "text": ""}}]
        out += [{"type": "response.output_text.delta", "output_index": 0, "content_index": 0,
                 "item_id": "msg_1", "delta": c} for c in _chunks(text)]
        out += [{"type": "response.output_text.done", "output_index": 0, "content_index": 0,
                 "item_id": "msg_1", "text": text},
                {"type": "response.content_part.done", "output_index": 0, "content_index": 0,
                 "item_id": "msg_1", "part": message["content"][0]},
                {"type": "response.output_item.done", "output_index": 0, "item": message},
                {"type": "response.output_item.added", "output_index": 1,
                 "item": {**call, "arguments": "", "status": "in_progress"}}]
        out += [{"type": "response.function_call_arguments.delta", "output_index": 1,
                 "item_id": "fc_1", "delta": c} for c in _chunks(args)]
        out += [{"type": "response.function_call_arguments.done", "output_index": 1,
                 "item_id": "fc_1", "arguments": args},
                {"type": "response.output_item.done", "output_index": 1, "item": call},
                {"type": "response.completed", "response": full}]
        for i, e in enumerate(out):
            e["sequence_number"] = i
        return [StreamEvent(e["type"], e) for e in out]
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
            "model": model}
    out = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant"},
                                 "finish_reason": None}]}]
    out += [{**head, "choices": [{"index": 0, "delta": {"content": c}, "finish_reason": None}]}
            for c in _chunks(text)]
    out.append({**head, "choices": [{"index": 0, "finish_reason": None, "delta": {
        "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                        "function": {"name": "lookup", "arguments": ""}}]}}]})
    out += [{**head, "choices": [{"index": 0, "finish_reason": None, "delta": {
        "tool_calls": [{"index": 0, "function": {"arguments": c}}]}}]} for c in _chunks(args)]
    out.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    return [StreamEvent(None, e) for e in out]


class ScriptedStream:
    """An `EventStream`: the scripted events, then optionally a stall (`hang`) or an endless
    drip of deltas (`drip` seconds apart); `closed` is set when the gateway closes it."""

    def __init__(self, events: list[StreamEvent], *, hang: bool = False,
                 drip: float | None = None, fail: UpstreamError | None = None) -> None:
        self._events = events
        self._hang = hang
        self._drip = drip
        self._fail = fail
        self._it = self._run()
        self.closed = asyncio.Event()
        self.usage = Usage()
        self.sent = 0

    async def _run(self) -> AsyncIterator[StreamEvent]:
        for event in self._events:
            self.sent += 1
            if self.sent == 2:
                self.usage = Usage(input_tokens=7)
            yield event
            if self._fail is not None and self.sent == 3:
                raise self._fail
            if self._hang and self.sent == 3:
                await asyncio.Event().wait()
            if self._drip is not None and self.sent == 3:
                while True:
                    await asyncio.sleep(self._drip)
                    self.sent += 1
                    yield self._events[2]
        self.usage = Usage(input_tokens=7, output_tokens=5)

    def __aiter__(self) -> ScriptedStream:
        return self

    async def __anext__(self) -> StreamEvent:
        return await self._it.__anext__()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        await self._it.aclose()  # type: ignore[attr-defined]
        self.closed.set()


@dataclass
class Scripted:
    """A CONTRACT.md `Upstream`. `failures` are raised, one per call, before answering."""

    route: RouteConfig
    failures: list[UpstreamError] = field(default_factory=list)
    count: int | None = None  # what count_tokens answers (None: cannot count)
    delay: float = 0.0
    stream_options: dict[str, Any] = field(default_factory=dict)
    seen: list[tuple[str, Shape | None, dict[str, Any], Mapping[str, str] | None]] = \
        field(default_factory=list)
    streams: list[ScriptedStream] = field(default_factory=list)

    def _take(self, kind: str, shape: Shape | None, body: dict[str, Any],
              headers: Mapping[str, str] | None) -> str:
        self.seen.append((kind, shape, body, headers))
        if self.failures:
            raise self.failures.pop(0)
        texts = request_texts(body)
        return texts[0] if texts else ""

    async def chat(self, shape: Shape, body: dict[str, Any],
                   headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        text = self._take("chat", shape, body, headers)
        if self.delay:
            await asyncio.sleep(self.delay)
        return answer(shape, self.route.name, text)

    async def open_stream(self, shape: Shape, body: dict[str, Any],
                          headers: Mapping[str, str] | None = None) -> ScriptedStream:
        text = self._take("stream", shape, body, headers)
        stream = ScriptedStream(stream_events(shape, self.route.name, text),
                                **self.stream_options)
        self.streams.append(stream)
        return stream

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        self._take("embed", None, body, None)
        return {"object": "list", "model": self.route.name, "data": [
            {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                "usage": {"prompt_tokens": 2, "total_tokens": 2}}

    async def count_tokens(self, shape: Shape, body: dict[str, Any],
                           headers: Mapping[str, str] | None = None) -> int | None:
        self._take("count", shape, body, headers)
        return self.count

    async def aclose(self) -> None:
        return None


@dataclass
class Rig:
    gateway: Gateway
    audit: MemoryAudit
    upstreams: dict[str, Scripted]


def rig(*, routes: tuple[RouteConfig, ...] = ROUTES, max_stream_s: float = 3600.0,
        quotas: QuotaSet | None = None, quota_gate: QuotaGate | None = None) -> Rig:
    snap = snapshot(routes, quotas)
    runtime = SimpleNamespace(snapshot=snap, bundle_error=None,
                              settings=Settings(routes=routes,
                                                limits=Limits(max_stream_s=max_stream_s)))
    upstreams = {r.name: Scripted(r) for r in routes}
    audit = MemoryAudit()
    gateway = Gateway(runtime, upstreams, audit, scanner=SCANNER,  # type: ignore[arg-type]
                      quota_gate=quota_gate)
    return Rig(gateway, audit, upstreams)


SCANNER = Scanner()


# -- driving the ASGI app ----------------------------------------------------------------

@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def events(self) -> list[tuple[str | None, Any]]:
        decoder = SSEDecoder()
        out = decoder.feed(self.body) + decoder.end()
        return [(e.event, e.data if e.data == "[DONE]" else orjson.loads(e.data)) for e in out]


async def request(gateway: Gateway, method: str, path: str, body: Any = None, *,
                  key: str | None = KEY, headers: dict[str, str] | None = None,
                  raw: bytes | None = None, leave_after: int | None = None) -> Reply:
    """One request through the ASGI app. `leave_after`: the client disconnects once it has
    received that many body messages."""
    sent: list[dict[str, Any]] = []
    gone = asyncio.Event()
    payload = raw if raw is not None else (b"" if body is None else orjson.dumps(body))
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        bodies = sum(1 for m in sent if m["type"] == "http.response.body")
        if leave_after is not None and bodies >= leave_after:
            gone.set()

    head = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if key is not None:
        head.append((b"authorization", f"Bearer {key}".encode()))
    scope = {"type": "http", "method": method, "path": path, "headers": head}
    await gateway(scope, receive, send)
    start = sent[0]
    return Reply(start["status"], {k.decode(): v.decode() for k, v in start["headers"]},
                 b"".join(m.get("body", b"") for m in sent[1:]))
