"""A real `harbourgate serve` and a real headless Chromium (Debian's, driven by Playwright).

The gateway runs as a subprocess on an ephemeral 127.0.0.1 port, with stand-in routes (they
answer in-process) and two named admin tokens. Chromium is the system browser
(`/usr/bin/chromium`, installed by scripts/test); axe-core comes from the npm registry into
`.cache/axe-core/` (scripts/test fetches it; the fixture does too when it is missing).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("HARBOURGATE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
AXE = ROOT / ".cache" / "axe-core" / "axe.min.js"
OPERATOR_TOKEN = "console-operator-token-0123456789"
AUDITOR_TOKEN = "console-auditor-token-0123456789"
READY_S = 120

expect.set_options(timeout=30_000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def admin(self, method: str, path: str, token: str = OPERATOR_TOKEN,
              **kw: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/admin/v1{path}", timeout=30,
                             headers={"Authorization": f"Bearer {token}"}, **kw)

    def chat(self, key: str, model: str) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/chat/completions", timeout=30,
                          headers={"Authorization": f"Bearer {key}"},
                          json={"model": model, "messages": [{"role": "user",
                                                              "content": "hello"}]})


def config(data_dir: Path) -> dict[str, Any]:
    def route(name: str, origin: str, hosting: str, **kw: Any) -> dict[str, Any]:
        return {"name": name, "provider": "stand-in", "origin": origin, "hosting": hosting,
                "class": "frontier-chat", **kw}

    return {
        "data_dir": str(data_dir),
        "admin_tokens": [
            {"token_env": "HARBOURGATE_ADMIN_TOKEN", "role": "operator", "name": "Ada Operator"},
            {"token": AUDITOR_TOKEN, "role": "auditor", "name": "Mei Auditor"}],
        "routes": [route("fable-5", "US", "US", export_tags=["us-frontier"]),
                   route("mythos-5", "US", "US", export_tags=["us-frontier"]),
                   route("qwen-local", "CN", "HK")],
        "sandbox": {
            "participants": [{"id": "acme", "name": "Acme Research", "jurisdiction": "HK"}],
            "applications": [{"id": "acme-research", "participant": "acme",
                              "name": "Acme research", "use_cases": ["research.b2b"],
                              "data_origin": "HK",
                              "model_preference": ["fable-5", "qwen-local"]}]},
    }


def start_server(workdir: Path) -> Server:
    path = workdir / "harbourgate.yaml"
    path.write_text(yaml.safe_dump(config(workdir / "data")))
    port = free_port()
    log = workdir / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harbourgate", "serve", "--config", str(path), "--port",
         str(port)], stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, "HARBOURGATE_ADMIN_TOKEN": OPERATOR_TOKEN})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"harbourgate serve exited:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return Server(url, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"harbourgate serve not ready:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("console"))
    yield running
    running.proc.terminate()
    try:
        running.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        running.proc.kill()
        running.proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module: Playwright's sync API keeps an event loop running in
    this thread while it is open, which would break every later test that calls
    `asyncio.run`, so it must not outlive the console tests."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the console tests need Debian's chromium "
                    "(scripts/test installs it: apt-get install -y chromium)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser, server: Server) -> Iterator[BrowserContext]:
    ctx = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    # Air-gapped: the page may fetch nothing but the gateway itself.
    outside: list[str] = []

    def guard(route: Any) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    ctx.route("**/*", guard)
    yield ctx
    ctx.close()
    assert outside == [], f"the console fetched from outside the deployment: {outside}"


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda e: errors.append(str(e)))
    opened.on("console", lambda m: errors.append(m.text) if "Content Security Policy"
              in m.text else None)
    yield opened
    assert errors == [], f"the page raised: {errors}"


def sign_in(page: Page, token: str, expect_name: str) -> None:
    page.goto("/console/")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who-name")).to_have_text(expect_name)


SHOTS = os.environ.get("HARBOURGATE_CONSOLE_SCREENSHOTS")  # a folder: the docs' images


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    """With HARBOURGATE_CONSOLE_SCREENSHOTS=docs/img, save the page as console-NAME.png."""
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.evaluate("() => { document.getElementById('toast').textContent = ''; }")
        page.screenshot(path=str(Path(SHOTS) / f"console-{name}.png"), full_page=full_page)


def axe_source() -> str:
    """axe-core's browser build, fetched from the npm registry once into .cache/."""
    if not AXE.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed once to fetch axe-core (scripts/test does it)")
        AXE.parent.mkdir(parents=True, exist_ok=True)
        out = subprocess.run([npm, "pack", "axe-core@4", "--pack-destination", str(AXE.parent)],
                             check=True, capture_output=True, text=True, timeout=300)
        tgz = AXE.parent / out.stdout.strip().splitlines()[-1]
        with tarfile.open(tgz) as tar:
            member = tar.extractfile("package/axe.min.js")
            assert member is not None
            AXE.write_bytes(member.read())
        tgz.unlink()
    return AXE.read_text()


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core run in the page: the violations whose impact is serious or critical."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source())
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]
