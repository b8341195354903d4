"""The console's files as the gateway serves them: only packaged files, never outside
static/, with a strict Content-Security-Policy, ETag revalidation and gzip; nothing in
them points outside the deployment."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from harbourgate.console import Console

STATIC = Path(__file__).resolve().parents[2] / "src" / "harbourgate" / "console" / "static"




def test_the_page_and_its_modules_are_served_with_a_strict_policy() -> None:
    client = TestClient(Console())  # type: ignore[arg-type]
    page = client.get("/console/", headers={"Accept-Encoding": "identity"})
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe" not in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="js/app.js">' in page.text
    module = client.get("/console/js/app.js")
    assert module.headers["content-type"] == "text/javascript; charset=utf-8"
    moved = client.get("/console", follow_redirects=False)
    assert moved.status_code == 308 and moved.headers["location"] == "/console/"


def test_a_known_etag_is_a_304_and_gzip_is_sent_when_asked() -> None:
    client = TestClient(Console())  # type: ignore[arg-type]
    first = client.get("/console/console.css", headers={"Accept-Encoding": "gzip"})
    assert first.headers["content-encoding"] == "gzip"
    assert first.text == (STATIC / "console.css").read_text()  # httpx decoded it
    again = client.get("/console/console.css", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    plain = client.get("/console/console.css", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert int(plain.headers["content-length"]) == (STATIC / "console.css").stat().st_size
    assert len(gzip.compress(plain.content)) < len(plain.content)


@pytest.mark.parametrize("path", [
    "/console/../admin/app.py", "/console/js/../../__init__.py", "/console/%2e%2e/x.js",
    "/console/js//app.js", "/console/nothing.js", "/console/js/app.py", "/console/js",
    "/console/.hidden.js", "/console/vendor\\x.js",
])
def test_nothing_outside_the_packaged_files_is_served(path: str) -> None:
    client = TestClient(Console())  # type: ignore[arg-type]
    response = client.get(path)
    assert response.status_code == 404, path
    assert response.text.startswith("no such console file")


def test_only_get_and_head() -> None:
    client = TestClient(Console())  # type: ignore[arg-type]
    response = client.post("/console/index.html")
    assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"
    head = client.head("/console/index.html", headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.content == b""


def test_no_file_refers_outside_the_deployment() -> None:
    """Air-gapped: no absolute URL to another host in anything the console ships that a
    browser would fetch (licence texts and comments may name projects' home pages)."""
    pattern = re.compile(r"""(?:src|href|url\(|import\(|from)\s*=?\s*["'(]\s*(?:https?:)?//""")
    for path in STATIC.rglob("*"):
        if path.suffix in (".html", ".js", ".mjs", ".css"):
            found = pattern.findall(path.read_text(errors="replace"))
            assert found == [], (path, found)
