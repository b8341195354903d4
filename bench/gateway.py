"""Gateway benchmark (PRODUCT.md §6): latency added over a direct call, and throughput.

    .venv/bin/python bench/gateway.py [--requests 3000] [--concurrency 1,16,64] [--no-write]

Starts a stand-in provider and `harbourgate serve` (1 worker, SQLite, group-commit audit,
an OpenAI-shaped route to the stand-in) as real processes on 127.0.0.1, then drives each
with `bench/loadgen.py` in a third process: first the stand-in directly, then the same
request through the gateway, at each concurrency, plain and streaming. Bounded: a fixed
number of requests per run. Reports throughput, p50/p99/p99.9, latency added, errors, and
the gateway's CPU per request and peak memory (from /proc). Writes the table into
docs/benchmarks.md unless --no-write.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
TOKEN = "bench-operator-token-0123456789"
PROMPT = ("Summarise the attached quarterly research notes for the Kowloon office, "
          "keep it under 200 words and list the three main risks. " * 4)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"process exited early: {proc.args}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"not ready: {url}")


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds so far, peak resident KiB) of a process and its children."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = int(re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())[1])
    return cpu, peak


def loadgen(url: str, headers: list[str], body: dict, concurrency: int, requests: int,
            stream: bool = False) -> dict:
    args = [sys.executable, str(ROOT / "bench" / "loadgen.py"), url, "--concurrency",
            str(concurrency), "--requests", str(requests), "--body", json.dumps(body)]
    for h in headers:
        args += ["--header", h]
    if stream:
        args.append("--stream")
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    hg = [sys.executable, "-m", "harbourgate"]
    work = Path(tempfile.mkdtemp(prefix="hg-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        sport, gport = free_port(), free_port()
        standin = subprocess.Popen([*hg, "stand-in", "--port", str(sport)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(standin)
        wait_ready(f"http://127.0.0.1:{sport}/v1/models", standin)
        config = {
            "data_dir": str(work / "data"),
            "routes": [{"name": "fable-5", "provider": "openai",
                        "base_url": f"http://127.0.0.1:{sport}/v1", "origin": "US",
                        "hosting": "US", "class": "frontier-chat"}],
            "sandbox": {"participants": [{"id": "acme", "name": "Acme", "jurisdiction": "HK"}],
                        "applications": [{"id": "acme-research", "participant": "acme",
                                          "name": "Acme", "use_cases": ["research.b2b"],
                                          "data_origin": "HK",
                                          "model_preference": ["fable-5"]}]},
        }
        (work / "config.yaml").write_text(yaml.safe_dump(config))
        gateway = subprocess.Popen(
            [*hg, "serve", "--config", str(work / "config.yaml"), "--port", str(gport)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "HARBOURGATE_ADMIN_TOKEN": TOKEN})
        procs.append(gateway)
        wait_ready(f"http://127.0.0.1:{gport}/readyz", gateway)
        key = httpx.post(f"http://127.0.0.1:{gport}/admin/v1/applications/acme-research/keys",
                         headers={"authorization": f"Bearer {TOKEN}"}).json()["key"]
        body = {"model": "fable-5", "messages": [{"role": "user", "content": PROMPT}]}
        direct = f"http://127.0.0.1:{sport}/v1/chat/completions"
        through = f"http://127.0.0.1:{gport}/v1/chat/completions"
        auth = [f"authorization: Bearer {key}"]
        loadgen(through, auth, body, 4, 500)  # warm-up: connections, caches
        rows = []
        for stream in (False, True):
            payload = {**body, "stream": stream}
            for c in levels:
                d = loadgen(direct, [], payload, c, args.requests, stream)
                cpu0, _ = proc_stats(gateway.pid)
                g = loadgen(through, auth, payload, c, args.requests, stream)
                cpu1, peak = proc_stats(gateway.pid)
                rows.append({"stream": stream, "c": c, "direct": d, "gateway": g,
                             "cpu_ms_per_req": (cpu1 - cpu0) * 1000 / max(g["requests"], 1),
                             "peak_mib": peak / 1024})
                print(f"{'stream' if stream else 'plain '} c={c:<3} direct {d['rps']:8.0f}/s "
                      f"p50 {d['p50_ms']:.3f} ms | gateway {g['rps']:8.0f}/s "
                      f"p50 {g['p50_ms']:.3f} ms p99 {g['p99_ms']:.3f} ms "
                      f"errors {sum(g['errors'].values())}", flush=True)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=15)
    table = render(rows)
    print(table)
    if not args.no_write:
        write_doc(table)


def render(rows: list[dict]) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; gateway 1 worker, stand-in upstream, loadgen in a "
        "third process on the same cores (so absolute figures are pessimistic).",
        "",
        "| mode | concurrency | direct req/s | gateway req/s | direct p50 ms | gateway p50 ms "
        "| added p50 ms | gateway p99 ms | gateway p99.9 ms | errors | gateway CPU ms/req "
        "| gateway peak MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d, g = r["direct"], r["gateway"]
        lines.append(
            f"| {'stream' if r['stream'] else 'plain'} | {r['c']} | {d['rps']:.0f} | "
            f"{g['rps']:.0f} | {d['p50_ms']:.3f} | {g['p50_ms']:.3f} | "
            f"{g['p50_ms'] - d['p50_ms']:.3f} | {g['p99_ms']:.3f} | {g['p999_ms']:.3f} | "
            f"{sum(g['errors'].values())} | {r['cpu_ms_per_req']:.3f} | {r['peak_mib']:.0f} |")
    return "\n".join(lines)


def write_doc(table: str) -> None:
    begin, end = "<!-- bench/gateway.py begin -->", "<!-- bench/gateway.py end -->"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = f"{begin}\n{table}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text,
                      flags=re.S)
    else:
        text += f"\n## Gateway: latency added and throughput\n\n{block}\n"
    DOC.write_text(text)


if __name__ == "__main__":
    main()
