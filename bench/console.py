"""The console's page weight and the decisions view's time to first page, in Chromium.

    .venv/bin/python bench/console.py [--decisions 100000]

Starts `harbourgate serve` on a temporary data directory, optionally fills its audit log
with N recorded request decisions first (written through the real AuditLog, as the
gateway writes them), signs in to /console with Debian's chromium (Playwright) and:

- page weight: every byte the browser fetched from /console (as sent: gzip where the
  browser asked for it), for the sign-in page and after visiting every section;
- decisions: time from asking for #/decisions to its first page of rows on screen, and
  the same with a filter (one application) that matches few of the N decisions.

Prints a Markdown table for docs/console.md. A benchmark, not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import yaml
from playwright.sync_api import Page, sync_playwright

TOKEN = "bench-operator-token-0123456789"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWS = ["participants", "applications", "directives", "quotas", "pools", "decisions",
         "audit", "policy"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fill(config_path: Path, count: int) -> None:
    """N request records in the log, spread over the last day, across 20 applications."""
    from harbourgate import config
    from harbourgate.app import prepare
    from harbourgate.audit.log import AuditLog
    from harbourgate.store import Store

    settings = config.load(str(config_path))
    prepare(settings)  # migrations and the signing key, as `serve` does first
    store = Store(settings.effective_database_url)
    log = AuditLog.open(settings, store)
    log.start()
    rng = random.Random(7)

    def record(i: int) -> dict[str, Any]:
        app = f"app-{i % 20}"
        decision = rng.choice(["allow", "allow", "allow", "reroute", "deny"])
        return {
            "kind": "request", "api": "openai", "endpoint": "/v1/chat/completions",
            "participant": "acme", "application": app, "key": "key-1",
            "model_requested": "fable-5",
            "model_served": None if decision == "deny" else
            ("qwen-local" if decision == "reroute" else "fable-5"),
            "decision": decision, "status": 403 if decision == "deny" else 200,
            "code": "directive" if decision == "deny" else None, "policy": "bench",
            "directives": [], "stream": False, "failover": [],
            "timing_ms": {"gateway": 0.5, "upstream": 1.0},
            "rule": "hk.allow.minimal", "citation": "bench", "tier": "minimal",
            "reasons": [], "obligations": {"pseudonymise": [], "log": "summary",
                                           "notice": None, "human_review": False}}

    async def writer(start: int, step: int) -> None:
        for i in range(start, count, step):
            await log.append(record(i))

    async def write_all() -> None:
        await asyncio.gather(*(writer(w, 64) for w in range(64)))

    try:
        asyncio.run(write_all())
    finally:
        log.close()
        store.close()


def serve(workdir: Path, decisions: int) -> tuple[subprocess.Popen[bytes], str]:
    path = workdir / "harbourgate.yaml"
    path.write_text(yaml.safe_dump({
        "data_dir": str(workdir / "data"),
        "admin_tokens": [{"token": TOKEN, "role": "operator", "name": "Bench"}],
        "sandbox": {"participants": [{"id": "acme", "name": "Acme", "jurisdiction": "HK"}],
                    "applications": [{"id": f"app-{i}", "participant": "acme",
                                      "name": f"App {i}", "use_cases": ["research.b2b"]}
                                     for i in range(20)]}}))
    if decisions:
        started = time.perf_counter()
        fill(path, decisions)
        print(f"wrote {decisions} decisions in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "harbourgate", "serve", "--config", str(path),
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("harbourgate serve did not become ready")


def first_page_s(page: Page, filters: dict[str, str]) -> float:
    page.goto(page.url.split("#")[0] + "#/policy")
    page.get_by_role("heading", name="Policy in force").wait_for()
    started = time.perf_counter()
    page.goto(page.url.split("#")[0] + "#/decisions")
    table = page.get_by_role("table", name="Recorded request decisions")
    if filters:
        page.get_by_role("heading", name="Decisions", exact=True).wait_for()
        started = time.perf_counter()
        form = page.get_by_role("form", name="Filter decisions")
        for label, value in filters.items():
            form.get_by_label(label).fill(value)
        form.get_by_role("button", name="Apply filters").click()
    table.locator("tbody tr").first.wait_for(timeout=120_000)
    if filters:
        page.wait_for_function(
            "v => [...document.querySelectorAll('#decision-results tbody tr')]"
            ".every(r => r.textContent.includes(v))", arg=next(iter(filters.values())),
            timeout=120_000)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=0, help="recorded decisions first")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = serve(Path(tmp), args.decisions)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page()
                sizes: dict[str, int] = {}

                def record(response: Any) -> None:
                    if "/console/" in response.url:
                        length = response.headers.get("content-length")
                        sizes[response.url] = int(length) if length else len(response.body())

                page.on("response", record)
                page.goto(url + "/console/")
                page.get_by_label("Admin token").wait_for()
                page.wait_for_load_state("networkidle")
                sign_in_bytes = sum(sizes.values())
                page.get_by_label("Admin token").fill(TOKEN)
                page.get_by_role("button", name="Sign in").click()
                page.locator("#who-name").wait_for()
                for view in VIEWS:
                    page.goto(f"{url}/console/#/{view}")
                    page.wait_for_load_state("networkidle")
                    page.wait_for_timeout(300)
                page.get_by_role("radio", name="YAML").count()  # directives loads js-yaml
                page.goto(f"{url}/console/#/directives")
                page.get_by_role("radio", name="YAML").check()
                page.get_by_role("button", name="Simulate against recorded traffic").click()
                page.wait_for_load_state("networkidle")
                every_bytes = sum(sizes.values())
                unfiltered = [first_page_s(page, {}) for _ in range(args.repeat)]
                filtered = [first_page_s(page, {"Application": "app-7"})
                            for _ in range(args.repeat)]
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print("| figure | value |\n|---|---|")
    print(f"| console files fetched for the sign-in page | {sign_in_bytes:,} bytes |")
    print(f"| console files fetched after visiting every section (incl. js-yaml) | "
          f"{every_bytes:,} bytes in {len(sizes)} files |")
    print(f"| decisions view, first page, {args.decisions:,} decisions (median of "
          f"{args.repeat}) | {median(unfiltered) * 1000:.0f} ms |")
    print(f"| same, filtered to one application of 20 | {median(filtered) * 1000:.0f} ms |")
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        print(f"  {size:>8,}  {name.split('/console/', 1)[1] or 'index.html'}", file=sys.stderr)


if __name__ == "__main__":
    main()
