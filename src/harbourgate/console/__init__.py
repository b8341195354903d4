"""The console: the admin API for people, in a browser, at `/console`.

Everything it needs (HTML, scripts, styles, the vendored YAML parser and the Swagger UI
assets of /admin/v1/docs) ships in this package's `static/` folder, so it works
air-gapped. The pages hold no data: they call the admin API with a session cookie
(`harbourgate.admin.session`). Files are read once, kept in memory with a gzip copy and
an ETag, and served with a Content-Security-Policy that allows nothing from elsewhere.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

PREFIX = "/console"
VENDOR = f"{PREFIX}/vendor"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'")
_SECURITY = [(b"content-security-policy", _CSP.encode()),
             (b"x-content-type-options", b"nosniff"),
             (b"referrer-policy", b"no-referrer"),
             (b"x-frame-options", b"DENY")]


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: bytes


def _packaged() -> dict[str, Traversable]:
    """Every servable file under static/, by its path relative to it."""
    found: dict[str, Traversable] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif "." in child.name and "." + child.name.rsplit(".", 1)[1] in _TYPES:
                found[prefix + child.name] = child

    walk(resources.files(__package__).joinpath("static"), "")
    return found


def _load(node: Traversable) -> Asset:
    body = node.read_bytes()
    packed = None if node.name.endswith(".png") else gzip.compress(body, 9, mtime=0)
    etag = b'"' + hashlib.sha256(body).hexdigest()[:20].encode() + b'"'
    return Asset(body, packed if packed and len(packed) < len(body) else None,
                 _TYPES["." + node.name.rsplit(".", 1)[1]], etag)


class Console:
    """The ASGI app for every path under /console."""

    def __init__(self) -> None:
        self._files = _packaged()  # the only paths served: nothing else can be named
        self._cache: dict[str, Asset] = {}

    def asset(self, relative: str) -> Asset | None:
        found = self._cache.get(relative)
        if found is None and relative in self._files:
            found = self._cache[relative] = _load(self._files[relative])
        return found

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path: str = scope["path"]
        if path == PREFIX:
            await _send(send, 308, [(b"location", b"/console/")], b"")
            return
        relative = path[len(PREFIX) + 1:] or "index.html"
        if scope["method"] not in ("GET", "HEAD"):
            await _send(send, 405, [(b"allow", b"GET, HEAD"),
                                    (b"content-type", b"text/plain; charset=utf-8")],
                        b"the console serves files: use GET\n")
            return
        found = self.asset(relative)
        if found is None:
            await _send(send, 404, [(b"content-type", b"text/plain; charset=utf-8")],
                        f"no such console file: {path}\n".encode())
            return
        headers = dict(scope["headers"])
        common = [(b"etag", found.etag), (b"cache-control", b"no-cache"),
                  (b"vary", b"accept-encoding"), *_SECURITY]
        if headers.get(b"if-none-match") == found.etag:
            await _send(send, 304, common, b"")
            return
        body = found.body
        extra = [(b"content-type", found.content_type.encode())]
        if found.gzipped is not None and b"gzip" in headers.get(b"accept-encoding", b""):
            body = found.gzipped
            extra.append((b"content-encoding", b"gzip"))
        await _send(send, 200, [*extra, *common], b"" if scope["method"] == "HEAD" else body,
                    length=len(body))


async def _send(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
                length: int | None = None) -> None:
    size = str(len(body) if length is None else length).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", size)]})
    await send({"type": "http.response.body", "body": body})


def swagger_ui_html(openapi_url: str, title: str) -> str:
    """/admin/v1/docs with its Swagger UI assets served from this package, not a CDN."""
    from fastapi.openapi.docs import get_swagger_ui_html

    page = get_swagger_ui_html(openapi_url=openapi_url, title=title,
                               swagger_js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
                               swagger_css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
                               swagger_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png")
    return bytes(page.body).decode()


__all__ = ["PREFIX", "Console", "swagger_ui_html"]
