"""Adapters to OpenAI-style and Anthropic-style upstreams over HTTP.

Each adapter speaks its provider's wire format and answers in the caller's shape: the
same shape passes through untouched (unknown fields and provider headers included), any
other is translated through `harbourgate.shapes`, which refuses by name what the
provider's API cannot express. Plain calls get the route's `timeout_s` for the whole
exchange; streams get it for connecting and receiving the headers, then as the longest
silence allowed between two reads.
"""

from __future__ import annotations

import abc
import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import orjson

from harbourgate.config import RouteConfig
from harbourgate.providers import wire
from harbourgate.providers.base import Shape, StreamEvent, UpstreamError
from harbourgate.providers.http import (
    POOL,
    ClientPool,
    connection_error,
    garbage_error,
    read_capped,
    status_error,
    timeout_error,
    too_large_error,
)
from harbourgate.providers.sse import EventTooLarge, ServerSentEvent, SSEDecoder
from harbourgate.shapes import API_NAMES, TranslationError, Usage
from harbourgate.shapes.responses import stateful_field
from harbourgate.shapes.translate import (
    StreamTranslator,
    UsageMeter,
    translate_answer,
    translate_request,
)

Translate = Callable[[ServerSentEvent], tuple[list[StreamEvent], bool]]
"""One upstream event -> (the caller-shape events it becomes, whether the stream ended)."""

_DRAIN_BYTES = 65_536
"""The most read after a stream's last event, to reuse the connection."""

_SHAPE_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)
"""What reading an answer of the wrong shape raises; it becomes an `upstream_error`."""

PASSED_HEADERS = ("anthropic-", "openai-")
"""The caller headers an adapter is handed (lower-case name prefixes)."""

TRACE_HEADERS = frozenset({"traceparent"})
"""W3C Trace Context the gateway adds for the attempt's span: protocol-neutral, so it goes
upstream whatever the provider's API."""

ANTHROPIC_COUNT_KEYS = ("model", "messages", "system", "tools", "tool_choice", "thinking")
RESPONSES_COUNT_KEYS = ("model", "input", "instructions", "tools", "tool_choice",
                        "parallel_tool_calls", "text", "reasoning", "truncation",
                        "previous_response_id", "conversation")


class UpstreamStream:
    """Caller-shape events from an upstream response; `aclose()` frees the connection.

    `usage` is the `Usage` the upstream reported so far (complete after the last event).
    Events come in batches, one per read from the upstream; `ready()` hands over the rest
    of the current batch without waiting, so the relay writes them to the client at once
    (one write instead of one per event, and never later than they arrived).
    """

    def __init__(self, batches: AsyncGenerator[list[StreamEvent], None],
                 response: wire.Response | None = None,
                 usage: Callable[[], Usage] | Usage | None = None) -> None:
        self._batches = batches
        self._ready: deque[StreamEvent] = deque()
        self._response = response
        self._usage = usage if usage is not None else Usage()

    @property
    def usage(self) -> Usage:
        return self._usage() if callable(self._usage) else self._usage

    def __aiter__(self) -> UpstreamStream:
        return self

    async def __anext__(self) -> StreamEvent:
        while not self._ready:
            self._ready.extend(await self._batches.__anext__())
        return self._ready.popleft()

    def ready(self) -> list[StreamEvent]:
        """The events already received after the last one returned (no waiting)."""
        events = list(self._ready)
        self._ready.clear()
        return events

    async def aclose(self) -> None:
        await self._batches.aclose()
        if self._response is not None:
            self._response.release()


def refusal(route: RouteConfig, shape: Shape, exc: TranslationError | str) -> UpstreamError:
    """A request the route's upstream API cannot express: 400 naming the field and the API."""
    return UpstreamError(f"model {route.name!r} is served through the {API_NAMES[shape]} API, "
                         f"which cannot take this request: {exc}", status=400,
                         code="invalid_request", retryable=False)


def check_request(route: RouteConfig, caller: Shape, served: Shape, body: dict[str, Any],
                  headers: Mapping[str, str] | None) -> None:
    """Refusals that do not depend on translating fields: n, Responses state, headers."""
    n = body.get("n") if caller == "openai" else None
    if isinstance(n, int) and not isinstance(n, bool) and n > 1 and not route.accepts.n:
        raise refusal(route, served, f"n: this route's upstream returns one choice per "
                      f"request (a route declares accepts: {{n: true}} if it can do {n})")
    if caller == "responses" and served != "responses":
        field = stateful_field(body)
        if field is not None:
            raise UpstreamError(
                f"model {route.name!r} is served through the {API_NAMES[served]} API, which "
                f"holds no Responses state: {field!r} needs a route whose upstream speaks the "
                "Responses API natively (api: responses); send the whole conversation in "
                "input (and store: false) instead", status=400, code="invalid_request",
                retryable=False)
    if caller != served:
        for name in headers or {}:
            lower = name.lower()
            if lower == "anthropic-version" or lower in TRACE_HEADERS:
                continue  # the caller's protocol version: the translation answers in it
            family = "anthropic-" if served == "anthropic" else "openai-"
            if not lower.startswith(family):
                raise refusal(route, served, f"header {lower}: has no equivalent")


def passed_headers(caller: Shape, served: Shape,
                   headers: Mapping[str, str] | None) -> dict[str, str]:
    """The caller headers sent upstream: all of them on the same-shape path, else those of
    the provider's own family (anthropic-version excepted: the translation speaks ours)
    and the trace context."""
    if not headers:
        return {}
    if caller == served:
        return dict(headers)
    family = "anthropic-" if served == "anthropic" else "openai-"
    return {k: v for k, v in headers.items() if k.lower() in TRACE_HEADERS
            or (k.lower().startswith(family) and k.lower() != "anthropic-version")}


class HTTPUpstream(abc.ABC):
    """What both network adapters share: the pooled session, timeouts, error mapping,
    and the choice between passing a request through and translating it."""


    def __init__(self, route: RouteConfig, *, pool: ClientPool | None = None) -> None:
        if not route.base_url:
            raise ValueError(f"route {route.name!r}: a {route.provider} route needs base_url")
        self.route = route
        self._base_url = route.base_url.rstrip("/")
        self._pool = POOL if pool is None else pool
        self._pool.acquire()
        self._closed = False
        self._headers = {"Content-Type": "application/json", **self._auth_headers(route.api_key)}

    @abc.abstractmethod
    def _auth_headers(self, key: str | None) -> dict[str, str]:
        """The headers that carry the route's key (and API version) to this provider."""

    @property
    @abc.abstractmethod
    def served(self) -> Shape:
        """The API shape this route's upstream speaks."""

    @property
    @abc.abstractmethod
    def _chat_url(self) -> str:
        """Where generation requests go."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.route.name!r}, {self.route.base_url!r})"

    # -- the Upstream protocol

    async def chat(self, shape: Shape, body: dict[str, Any],
                   headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        request = self._request(shape, body, headers, stream=False)
        data = await self._post(self._chat_url, request, passed_headers(shape, self.served,
                                                                          headers))
        if shape == self.served:
            if not _looks_like_answer(shape, data):
                raise garbage_error(self.route.name, f"a body of unexpected shape (not an "
                                    f"{API_NAMES[shape]} answer)")
            data["model"] = self.route.name
            return data
        try:
            return translate_answer(self.served, shape, data, model=self.route.name,
                                    request=body)
        except (TranslationError, *_SHAPE_ERRORS) as exc:
            raise garbage_error(self.route.name, f"a body of unexpected shape ({exc}), which "
                                f"cannot be given in the {API_NAMES[shape]} API") from None

    async def open_stream(self, shape: Shape, body: dict[str, Any],
                          headers: Mapping[str, str] | None = None) -> UpstreamStream:
        request = self._request(shape, body, headers, stream=True)
        extra = passed_headers(shape, self.served, headers)
        client = self._pool.client()
        response: wire.Response | None = None
        deadline = asyncio.get_running_loop().time() + self.route.timeout_s
        try:  # connecting and the head (and an error's body) within the route's timeout
            response = await client.request("POST", self._chat_url, {**self._headers, **extra},
                                            orjson.dumps(request), deadline=deadline)
            if response.status >= 400:
                raise status_error(self.route.name, response.status,
                                   await read_capped(response, self.route.name,
                                                     self._pool.max_response_bytes, deadline),
                                   response.headers.get("retry-after"))
        except BaseException as exc:
            if response is not None:
                response.release()
            if isinstance(exc, OSError | TimeoutError):  # wire's errors are OSErrors
                raise connection_error(self.route.name, exc) from None
            raise
        content_type = response.headers.get("content-type", "")
        if not content_type.startswith("text/event-stream"):
            response.release()
            raise garbage_error(self.route.name, f"a stream request with {content_type or 'no'} "
                                "content instead of an event stream")
        if shape == self.served:
            meter = UsageMeter(shape, body)
            translate = self._passthrough(shape, body, meter)
            return UpstreamStream(self._events(response, translate), response,
                                  lambda: meter.usage)
        translator = StreamTranslator(self.served, shape, model=self.route.name, request=body)
        return UpstreamStream(self._events(response, self._translated(translator)), response,
                              lambda: translator.usage)

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        raise UpstreamError(f"model {self.route.name!r} does not serve embeddings",
                            status=400, code="invalid_request", retryable=False)

    async def count_tokens(self, shape: Shape, body: dict[str, Any],
                           headers: Mapping[str, str] | None = None) -> int | None:
        url = self._count_url
        if url is None:
            return None
        check_request(self.route, shape, self.served, body, headers)
        if shape == self.served:
            request = {**body, "model": self.route.model_id}
        else:
            try:
                request = translate_request(shape, self.served, body,
                                            model=self.route.model_id)
            except TranslationError as exc:
                raise refusal(self.route, self.served, exc) from None
        keys = ANTHROPIC_COUNT_KEYS if self.served == "anthropic" else RESPONSES_COUNT_KEYS
        request = {k: v for k, v in request.items() if k in keys}
        data = await self._post(url, request, passed_headers(shape, self.served, headers))
        count = data.get("input_tokens")
        if isinstance(count, bool) or not isinstance(count, int):
            raise garbage_error(self.route.name, "a token count without input_tokens")
        return count

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._pool.release()

    # -- shared machinery

    @property
    def _count_url(self) -> str | None:
        """Where token counting requests go, if this upstream counts."""
        return None

    def _request(self, shape: Shape, body: dict[str, Any], headers: Mapping[str, str] | None,
                 *, stream: bool) -> dict[str, Any]:
        """The caller's request as this upstream's request: passed through or translated."""
        check_request(self.route, shape, self.served, body, headers)
        if shape == self.served:
            request = {**body, "model": self.route.model_id}
        else:
            try:
                request = translate_request(
                    shape, self.served, body, model=self.route.model_id,
                    max_completion_tokens=self.route.accepts.max_completion_tokens,
                    top_k=self.route.accepts.top_k)
            except TranslationError as exc:
                raise refusal(self.route, self.served, exc) from None
        if not stream:
            request.pop("stream", None)
            request.pop("stream_options", None)
            return request
        request["stream"] = True
        if self.served == "openai":
            # Always ask for usage, so it can be reported; callers that did not ask get
            # the usage chunk filtered out.
            options = request.get("stream_options")
            request["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                         "include_usage": True}
        return request

    def _passthrough(self, shape: Shape, body: dict[str, Any], meter: UsageMeter) -> Translate:
        """Same shape: events pass untouched but for the model name (and OpenAI's usage
        chunk, which only a caller that asked for it receives)."""
        route = self.route.name
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        feed = meter.feed

        def chat(sse: ServerSentEvent) -> tuple[list[StreamEvent], bool]:
            if sse.data == "[DONE]":
                return [], True
            data = orjson.loads(sse.data)
            if not isinstance(data, dict):
                raise TypeError("an event that is not an object")
            if sse.event == "error" or "error" in data or "type" in data:
                _raise_stream_error(route, sse, data)
            feed(data)
            if not include_usage:
                if not data.get("choices") and data.get("usage"):
                    return [], False
                data.pop("usage", None)
            data["model"] = route
            return [StreamEvent(None, data)], False

        if shape == "openai":
            return chat

        def translate(sse: ServerSentEvent) -> tuple[list[StreamEvent], bool]:
            data = orjson.loads(sse.data)
            if not isinstance(data, dict):
                raise TypeError("an event that is not an object")
            kind = data.get("type")
            if sse.event == "error" or kind in _ERROR_KINDS or "error" in data:
                _raise_stream_error(route, sse, data)
            feed(data)
            if shape == "anthropic":
                if kind == "message_start" and isinstance(data.get("message"), dict):
                    data["message"]["model"] = route
                return [StreamEvent(sse.event or kind, data)], kind == "message_stop"
            response = data.get("response")
            if isinstance(response, dict) and "model" in response:
                response["model"] = route
            ended = kind in ("response.completed", "response.incomplete", "response.failed")
            return [StreamEvent(sse.event or kind, data)], ended

        return translate

    def _translated(self, translator: StreamTranslator) -> Translate:
        route = self.route.name

        def translate(sse: ServerSentEvent) -> tuple[list[StreamEvent], bool]:
            if self.served == "openai" and sse.data == "[DONE]":
                return translator.finish(), True
            data = orjson.loads(sse.data)
            if not isinstance(data, dict):
                raise TypeError("an event that is not an object")
            if sse.event == "error" or "error" in data or data.get("type") in _ERROR_KINDS:
                _raise_stream_error(route, sse, data)
            return translator.feed(data), translator.done

        return translate

    async def _post(self, url: str, payload: dict[str, Any],
                    extra_headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        headers = {**self._headers, **extra_headers} if extra_headers else self._headers
        response: wire.Response | None = None
        deadline = asyncio.get_running_loop().time() + self.route.timeout_s
        try:
            response = await self._pool.client().request("POST", url, headers,
                                                         orjson.dumps(payload),
                                                         deadline=deadline)
            raw = await read_capped(response, self.route.name,
                                    self._pool.max_response_bytes, deadline)
        except (OSError, TimeoutError) as exc:  # wire's errors are OSErrors
            raise connection_error(self.route.name, exc) from None
        finally:
            if response is not None:
                response.release()
        status = response.status
        retry_after = response.headers.get("retry-after")
        if status >= 400:
            raise status_error(self.route.name, status, raw, retry_after)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise garbage_error(self.route.name, f"with a body that is not JSON ({raw[:60]!r})"
                                ) from None
        if not isinstance(data, dict):
            raise garbage_error(self.route.name, "with JSON that is not an object")
        return data

    async def _events(self, response: wire.Response,
                      translate: Translate) -> AsyncGenerator[list[StreamEvent], None]:
        """The caller's events, one batch per read from the upstream."""
        name = self.route.name
        decoder = SSEDecoder(self._pool.max_response_bytes)
        ended = False
        drained = 0
        try:
            async for chunk in response.chunks(self.route.timeout_s):
                if ended:  # read the response's end so the connection can be reused, but
                    drained += len(chunk)  # not an upstream that keeps talking after it
                    if drained > _DRAIN_BYTES:
                        break
                    continue
                batch: list[StreamEvent] = []
                for sse in decoder.feed(chunk):
                    try:
                        events, ended = translate(sse)
                    except (TranslationError, *_SHAPE_ERRORS) as exc:
                        raise self._unreadable(sse, exc) from None
                    batch += events
                    if ended:
                        break
                if batch:
                    yield batch
            batch = []
            for sse in [] if ended else decoder.end():
                try:
                    events, ended = translate(sse)
                except (TranslationError, *_SHAPE_ERRORS) as exc:
                    raise self._unreadable(sse, exc) from None
                batch += events
            if batch:
                yield batch
        except TimeoutError:
            raise timeout_error(name, streaming=True) from None
        except EventTooLarge:
            raise too_large_error(name, self._pool.max_response_bytes) from None
        except OSError as exc:  # wire's errors are OSErrors
            if not ended:
                raise connection_error(name, exc, streaming=True) from None
        finally:
            response.release()
        if not ended:
            raise UpstreamError(f"model {name!r}: the upstream closed the stream before its "
                                "end", retryable=False)

    def _unreadable(self, sse: ServerSentEvent, exc: Exception) -> UpstreamError:
        """The mid-stream error for an event `translate` could not read (`exc`)."""
        if isinstance(exc, orjson.JSONDecodeError):
            return UpstreamError(f"model {self.route.name!r}: the upstream sent an event that "
                                 f"is not JSON ({sse.data[:60]!r})", retryable=False)
        return UpstreamError(f"model {self.route.name!r}: the upstream sent an event "
                             f"of unexpected shape ({exc})", retryable=False)


def _looks_like_answer(shape: Shape, data: dict[str, Any]) -> bool:
    """Whether a same-shape answer has the frame the gateway reads (it passes on untouched)."""
    if shape == "openai":
        choices = data.get("choices")
        return (isinstance(choices, list) and bool(choices)
                and all(isinstance(c, dict) and isinstance(c.get("message"), dict)
                        for c in choices))
    if shape == "anthropic":
        return data.get("type") == "message" and isinstance(data.get("content"), list)
    return data.get("object") == "response" and isinstance(data.get("output"), list)


_ERROR_KINDS = ("error", "response.failed")


def _raise_stream_error(route: str, sse: ServerSentEvent, data: dict[str, Any]) -> None:
    """An error event mid-stream (any of the three shapes) as an UpstreamError. A caller
    may skip an event that is not named `error` and has neither a `type` among
    `_ERROR_KINDS` nor an `error` key: such an event is never one."""
    kind = data.get("type")
    if sse.event == "error" or kind in _ERROR_KINDS or (
            kind is None and data.get("error")):
        error = data.get("error")
        if kind == "response.failed" and isinstance(data.get("response"), dict):
            error = data["response"].get("error")
        message = error.get("message") if isinstance(error, dict) else (error or data)
        raise UpstreamError(f"model {route!r}: the upstream failed mid-stream: {message}",
                            retryable=False)


class OpenAIUpstream(HTTPUpstream):
    """An OpenAI-compatible upstream: `{base_url}/chat/completions` (or `/responses` when the
    route declares `api: responses`), `/embeddings`."""


    def _auth_headers(self, key: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"} if key else {}

    @property
    def served(self) -> Shape:
        return "responses" if self.route.api == "responses" else "openai"

    @property
    def _chat_url(self) -> str:
        if self.served == "responses":
            return self._base_url + "/responses"
        return self._base_url + "/chat/completions"

    @property
    def _count_url(self) -> str | None:
        return self._base_url + "/responses/input_tokens" if self.served == "responses" else None

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        request = {**body, "model": self.route.model_id}
        data = await self._post(self._base_url + "/embeddings", request)
        if not isinstance(data.get("data"), list):
            raise garbage_error(self.route.name, "an embeddings request without a data list")
        data["model"] = self.route.name
        return data


class AnthropicUpstream(HTTPUpstream):
    """An Anthropic-compatible upstream: `{base_url}/v1/messages`, `/v1/messages/count_tokens`."""

    VERSION = "2023-06-01"

    def _auth_headers(self, key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": self.VERSION}
        if key:
            headers["x-api-key"] = key
        return headers

    @property
    def served(self) -> Shape:
        return "anthropic"

    @property
    def _chat_url(self) -> str:
        return self._base_url + "/v1/messages"

    @property
    def _count_url(self) -> str | None:
        return self._base_url + "/v1/messages/count_tokens"
