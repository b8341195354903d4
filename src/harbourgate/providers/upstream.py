"""Adapters to OpenAI-style and Anthropic-style upstreams over HTTP.

Each adapter speaks its provider's wire format and answers in the caller's shape,
translating requests, responses and streams when the two differ. Plain calls get the
route's `timeout_s` for the whole exchange; streams get it for connecting and receiving
the headers, then as the longest silence allowed between two reads.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import Any, ClassVar

import aiohttp
import orjson

from harbourgate.config import RouteConfig
from harbourgate.providers.base import Shape, StreamEvent, UpstreamError
from harbourgate.providers.http import (
    POOL,
    ClientPool,
    connection_error,
    garbage_error,
    status_error,
    timeout_error,
)
from harbourgate.providers.sse import ServerSentEvent, SSEDecoder
from harbourgate.providers.translate import (
    StreamToAnthropic,
    StreamToOpenAI,
    TranslationError,
    request_to_anthropic,
    request_to_openai,
    response_to_anthropic,
    response_to_openai,
)

Translate = Callable[[ServerSentEvent], tuple[list[StreamEvent], bool]]
"""One upstream event -> (the caller-shape events it becomes, whether the stream ended)."""

_SHAPE_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)
"""What reading an answer of the wrong shape raises; it becomes an `upstream_error`."""


class UpstreamStream:
    """Caller-shape events from an upstream response; `aclose()` frees the connection.

    After the last event, `usage` holds the token counts the upstream reported, as
    `{"input_tokens": N, "output_tokens": M}` (empty if it reported none).
    """

    def __init__(self, events: AsyncGenerator[StreamEvent, None],
                 response: aiohttp.ClientResponse | None = None,
                 usage: dict[str, int] | None = None) -> None:
        self._events = events
        self._response = response
        self.usage: dict[str, int] = {} if usage is None else usage

    def __aiter__(self) -> UpstreamStream:
        return self

    async def __anext__(self) -> StreamEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        await self._events.aclose()
        if self._response is not None:
            self._response.release()


class HTTPUpstream(abc.ABC):
    """What both network adapters share: the pooled session, timeouts, error mapping."""

    provider: ClassVar[Shape]

    def __init__(self, route: RouteConfig, *, pool: ClientPool | None = None) -> None:
        if not route.base_url:
            raise ValueError(f"route {route.name!r}: a {route.provider} route needs base_url")
        self.route = route
        self._base_url = route.base_url.rstrip("/")
        self._pool = POOL if pool is None else pool
        self._pool.acquire()
        self._closed = False
        self._headers = {"Content-Type": "application/json", **self._auth_headers(route.api_key)}
        self._plain_timeout = aiohttp.ClientTimeout(total=route.timeout_s)
        self._stream_timeout = aiohttp.ClientTimeout(total=None, sock_connect=route.timeout_s,
                                                     sock_read=route.timeout_s)

    @abc.abstractmethod
    def _auth_headers(self, key: str | None) -> dict[str, str]:
        """The headers that carry the route's key (and API version) to this provider."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.route.name!r}, {self.route.base_url!r})"

    # -- the Upstream protocol

    async def chat(self, shape: Shape, body: dict[str, Any]) -> dict[str, Any]:
        data = await self._post(self._chat_url, self._chat_request(shape, body, stream=False))
        try:
            return self._chat_response(shape, data)
        except (TranslationError, *_SHAPE_ERRORS) as exc:
            raise garbage_error(self.route.name, f"a body of unexpected shape ({exc})") from None

    async def open_stream(self, shape: Shape, body: dict[str, Any]) -> UpstreamStream:
        request = self._chat_request(shape, body, stream=True)
        session = await self._pool.session()
        response: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(self.route.timeout_s):  # connecting + the headers
                response = await session.post(self._chat_url, data=orjson.dumps(request),
                                              headers=self._headers,
                                              timeout=self._stream_timeout)
                if response.status >= 400:
                    raise status_error(self.route.name, response.status, await response.read())
        except BaseException as exc:
            if response is not None:
                response.release()
            if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError):
                raise connection_error(self.route.name, exc) from None
            raise
        content_type = response.headers.get("Content-Type", "")
        if not content_type.startswith("text/event-stream"):
            response.release()
            raise garbage_error(self.route.name, f"a stream request with {content_type or 'no'} "
                                "content instead of an event stream")
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        usage: dict[str, int] = {}
        translate = self._translator(shape, include_usage, usage)
        return UpstreamStream(self._events(response, translate), response, usage)

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        raise UpstreamError(f"model {self.route.name!r} does not serve embeddings",
                            status=400, code="invalid_request", retryable=False)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._pool.release()

    # -- shared machinery

    @property
    @abc.abstractmethod
    def _chat_url(self) -> str:
        """Where chat requests go."""

    @abc.abstractmethod
    def _chat_request(self, shape: Shape, body: dict[str, Any], *,
                      stream: bool) -> dict[str, Any]:
        """The caller's request as this provider's request."""

    @abc.abstractmethod
    def _chat_response(self, shape: Shape, data: dict[str, Any]) -> dict[str, Any]:
        """This provider's answer as the caller's answer (raises on an unexpected shape)."""

    @abc.abstractmethod
    def _translator(self, shape: Shape, include_usage: bool,
                    usage: dict[str, int]) -> Translate:
        """A function from one upstream event to (caller events, whether the stream ended);
        it records the token counts it sees in `usage`."""

    def _refuse(self, exc: TranslationError) -> UpstreamError:
        return UpstreamError(f"model {self.route.name!r} cannot take this request: {exc}",
                             status=400, code="invalid_request", retryable=False)

    async def _post(self, url: str, payload: dict[str, Any]) -> dict[str, Any]:
        session = await self._pool.session()
        try:
            async with session.post(url, data=orjson.dumps(payload), headers=self._headers,
                                    timeout=self._plain_timeout) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise connection_error(self.route.name, exc) from None
        if status >= 400:
            raise status_error(self.route.name, status, raw)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise garbage_error(self.route.name, f"with a body that is not JSON ({raw[:60]!r})"
                                ) from None
        if not isinstance(data, dict):
            raise garbage_error(self.route.name, "with JSON that is not an object")
        return data

    async def _events(self, response: aiohttp.ClientResponse,
                      translate: Translate) -> AsyncGenerator[StreamEvent, None]:
        name = self.route.name
        decoder = SSEDecoder()
        ended = False
        try:
            async for chunk in response.content.iter_any():
                if ended:
                    continue  # drain to the end so the connection can be reused
                for sse in decoder.feed(chunk):
                    events, ended = self._translate(translate, sse)
                    for event in events:
                        yield event
                    if ended:
                        break
            for sse in [] if ended else decoder.end():
                events, ended = self._translate(translate, sse)
                for event in events:
                    yield event
        except TimeoutError:
            raise timeout_error(name, streaming=True) from None
        except aiohttp.ClientError as exc:
            if not ended:
                raise connection_error(name, exc, streaming=True) from None
        finally:
            response.release()
        if not ended:
            raise UpstreamError(f"model {name!r}: the upstream closed the stream before its "
                                "end", retryable=False)

    def _translate(self, translate: Translate,
                   sse: ServerSentEvent) -> tuple[list[StreamEvent], bool]:
        """`translate(sse)`, with anything unreadable turned into a mid-stream UpstreamError."""
        try:
            return translate(sse)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"model {self.route.name!r}: the upstream sent an event that "
                                f"is not JSON ({sse.data[:60]!r})", retryable=False) from None
        except UpstreamError:
            raise
        except (TranslationError, *_SHAPE_ERRORS) as exc:
            raise UpstreamError(f"model {self.route.name!r}: the upstream sent an event of "
                                f"unexpected shape ({exc})", retryable=False) from None


class OpenAIUpstream(HTTPUpstream):
    """An OpenAI-compatible upstream: `{base_url}/chat/completions`, `/embeddings`."""

    provider = "openai"

    def _auth_headers(self, key: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"} if key else {}

    @property
    def _chat_url(self) -> str:
        return self._base_url + "/chat/completions"

    def _chat_request(self, shape: Shape, body: dict[str, Any], *,
                      stream: bool) -> dict[str, Any]:
        if shape == "openai":
            request = {**body, "model": self.route.model_id}
        else:
            try:
                request = request_to_openai(body, model=self.route.model_id)
            except TranslationError as exc:
                raise self._refuse(exc) from None
        if stream:
            # Always ask for usage, so it can be reported; callers that did not ask get
            # the usage chunk filtered out.
            request["stream"] = True
            request["stream_options"] = {**(request.get("stream_options") or {}),
                                         "include_usage": True}
        else:
            request.pop("stream", None)
            request.pop("stream_options", None)
        return request

    def _chat_response(self, shape: Shape, data: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(data["choices"][0]["message"], dict):
            raise TypeError("choices[0].message is not an object")
        if shape == "anthropic":
            return response_to_anthropic(data, model=self.route.name)
        data["model"] = self.route.name
        return data

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        request = {**body, "model": self.route.model_id}
        data = await self._post(self._base_url + "/embeddings", request)
        if not isinstance(data.get("data"), list):
            raise garbage_error(self.route.name, "an embeddings request without a data list")
        data["model"] = self.route.name
        return data

    def _translator(self, shape: Shape, include_usage: bool,
                    usage: dict[str, int]) -> Translate:
        route = self.route.name
        to_anthropic = StreamToAnthropic(model=route) if shape == "anthropic" else None

        def translate(sse: ServerSentEvent) -> tuple[list[StreamEvent], bool]:
            if sse.data == "[DONE]":
                return (to_anthropic.finish() if to_anthropic is not None else []), True
            chunk = orjson.loads(sse.data)
            if not isinstance(chunk, dict):
                raise TypeError("an event that is not an object")
            if chunk.get("error"):
                error = chunk["error"]
                message = error.get("message") if isinstance(error, dict) else error
                raise UpstreamError(f"model {route!r}: the upstream failed mid-stream: "
                                    f"{message}", retryable=False)
            if chunk.get("usage"):
                usage["input_tokens"] = chunk["usage"].get("prompt_tokens") or 0
                usage["output_tokens"] = chunk["usage"].get("completion_tokens") or 0
            if to_anthropic is not None:
                return to_anthropic.feed(chunk), False
            if not chunk.get("choices") and chunk.get("usage") and not include_usage:
                return [], False
            if not include_usage:
                chunk.pop("usage", None)
            chunk["model"] = route
            return [StreamEvent(None, chunk)], False

        return translate


class AnthropicUpstream(HTTPUpstream):
    """An Anthropic-compatible upstream: `{base_url}/v1/messages`."""

    provider = "anthropic"
    VERSION = "2023-06-01"

    def _auth_headers(self, key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": self.VERSION}
        if key:
            headers["x-api-key"] = key
        return headers

    @property
    def _chat_url(self) -> str:
        return self._base_url + "/v1/messages"

    def _chat_request(self, shape: Shape, body: dict[str, Any], *,
                      stream: bool) -> dict[str, Any]:
        if shape == "anthropic":
            request = {**body, "model": self.route.model_id}
        else:
            try:
                request = request_to_anthropic(body, model=self.route.model_id)
            except TranslationError as exc:
                raise self._refuse(exc) from None
        if stream:
            request["stream"] = True
        else:
            request.pop("stream", None)
        return request

    def _chat_response(self, shape: Shape, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("type") != "message" or not isinstance(data.get("content"), list):
            raise TypeError("not an Anthropic message (type 'message' with a content list)")
        if shape == "openai":
            return response_to_openai(data, model=self.route.name)
        data["model"] = self.route.name
        return data

    def _translator(self, shape: Shape, include_usage: bool,
                    usage: dict[str, int]) -> Translate:
        route = self.route.name
        to_openai = StreamToOpenAI(model=route, include_usage=include_usage) \
            if shape == "openai" else None

        def translate(sse: ServerSentEvent) -> tuple[list[StreamEvent], bool]:
            data = orjson.loads(sse.data)
            if not isinstance(data, dict):
                raise TypeError("an event that is not an object")
            kind = data.get("type")
            if kind == "error" or sse.event == "error":
                error = data.get("error") or {}
                message = error.get("message") if isinstance(error, dict) else error
                raise UpstreamError(f"model {route!r}: the upstream failed mid-stream: "
                                    f"{message}", retryable=False)
            if kind == "message_start":
                data["message"]["model"] = route
                usage["input_tokens"] = (data["message"].get("usage") or {}).get(
                    "input_tokens") or 0
            elif kind == "message_delta" and data.get("usage"):
                for key in ("input_tokens", "output_tokens"):
                    if data["usage"].get(key) is not None:
                        usage[key] = data["usage"][key]
            if to_openai is not None:
                return to_openai.feed(data), to_openai.done
            return [StreamEvent(sse.event or kind, data)], kind == "message_stop"

        return translate
