"""Harbourgate side by side with LiteLLM proxy and the direct call (PRODUCT.md §6).

    bench/run [--quick] [--workers 1] [--levels 1,16,64,256] [--no-write]

One run on one machine, everything on 127.0.0.1 and bounded in requests and time:

1. starts the stand-in upstream (`harbourgate stand-in`), then Harbourgate
   (`harbourgate serve`: API key, an end-user attestation checked against a JWKS, the four
   policy packs, the privacy scan of a ~2 KB mixed English/Chinese business prompt whose
   mainland origin makes the cross-border pack pseudonymise it for a US-hosted route, and
   the group-commit audit log) and LiteLLM proxy (from PyPI, in bench/.venv-litellm, the
   same stand-in as an OpenAI-compatible upstream, no database, no callbacks), each with
   the same number of worker processes;
2. probes that the pipeline really runs (a missing key and a forged attestation are
   refused, the upstream receives pseudonyms, the answer has the original values back);
3. at each concurrency, plain and streaming, drives the direct call, Harbourgate and
   LiteLLM in turn with `bench/loadgen.py`, a separate asyncio process, in interleaved
   rounds so background noise hits all three alike; CPU and peak memory come from /proc
   for each server's whole process tree;
4. measures scaling: Harbourgate with 1, 2 and 4 workers on SQLite, one and two replicas
   on PostgreSQL + Redis with the load split across both, LiteLLM with 2 and 4 workers;
   then one worker with the access log off, on as text, on as JSON, and with
   OpenTelemetry exporting to a local OTLP sink; the closing note gives each one's cost;
5. writes raw JSON to bench/results/, its section of docs/benchmarks.md and the plot
   docs/img/benchmarks.png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "img" / "benchmarks.png"
RESULTS = BENCH / "results"
LITELLM_VENV = BENCH / ".venv-litellm"
BEGIN, END = "<!-- bench/compare.py begin -->", "<!-- bench/compare.py end -->"
ADMIN_TOKEN = "bench-operator-" + secrets.token_hex(8)
LITELLM_KEY = "sk-bench-" + secrets.token_hex(8)
ISSUER = "https://id.bench.example"
POOL_SIZE = 4
"""Servers of the pool row in the scaling section (stand-ins, balanced least outstanding)."""
TICKS = os.sysconf("SC_CLK_TCK")

DOCUMENT = """季度業務回顧 Quarterly business review — Kowloon Bay office, Q3 2026

Prepared for the regional steering committee. Internal, B2B research use only.

1. Summary / 摘要
Revenue from our logistics analytics subscriptions grew 14% quarter on quarter, driven by
three new enterprise customers in Shenzhen and Dongguan. 本季度物流分析訂閱收入按季增長百分之十四，
主要來自深圳及東莞三家新企業客戶。Churn stayed below 2%. The cross-border freight index we
license to port operators was renewed for another two years.

2. Customer escalations / 客戶投訴
A customer contact, 陳大文 (HKID A123456(3)), reported that the dashboard exports in
Traditional Chinese truncate long warehouse names. He can be reached on +852 9123 4567 or
chan.taiman@example.com.hk. 另一位深圳客戶聯絡人李小龍，手機 13812345678，
電郵 li.xiaolong@example.cn，反映報表延遲約兩小時。Both tickets are open with engineering;
target fix is the 4.2 release.

3. Pipeline / 銷售管道
- Guangzhou cold-chain operator: proof of concept signed, decision expected in November.
- Macau hotel group: pricing discussion, wants on-premises deployment in Hong Kong.
- 珠海港口集團：正在評估跨境數據合規方案，需要我們提供數據處理協議範本。

4. Risks / 風險
(a) Data localisation: mainland customers ask whether their shipment records leave the
mainland. 我們需要確認所有個人資料在傳輸前已經假名化。 (b) Key-person dependency on the two
engineers who maintain the freight index. (c) FX exposure on RMB-denominated contracts,
currently unhedged; finance proposes a rolling three-month forward.

5. Headcount / 人手
Two analyst roles approved; one offer accepted (start date 1 December). 團隊目前共十八人。
"""
QUESTION = ("請用不超過一百五十字總結以上季度回顧，列出三個主要風險及建議行動。Please also draft a "
            "short reply to the escalation from 陳大文 (call +852 9123 4567) confirming the "
            "4.2 fix date.")
PHONE = "+852 9123 4567"  # in the last user message: the stand-in echoes it back
RAW_VALUES = ("A123456(3)", "9123 4567", "chan.taiman@example.com.hk", "13812345678")


def chat_body(stream: bool) -> dict[str, Any]:
    """The request every target gets: the document as context, then the question."""
    return {"model": "fable-5", "stream": stream, "messages": [
        {"role": "system", "content": "You are an analyst. Context document follows.\n\n"
                                      + DOCUMENT},
        {"role": "user", "content": QUESTION}]}


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_tree(root: int) -> list[int]:
    """`root` and all its live descendants (uvicorn workers, multiprocessing helpers)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += parents.get(pid, [])
    return out


def cpu_seconds(roots: list[int]) -> float:
    """User + system CPU of every process in the trees under `roots`, all threads."""
    total = 0.0
    for root in roots:
        for pid in process_tree(root):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def peak_memory(roots: list[int]) -> list[dict[str, Any]]:
    """Peak resident set (VmHWM) of each process in the trees, largest first."""
    out = []
    for root in roots:
        for pid in process_tree(root):
            with contextlib.suppress(OSError, TypeError):
                status = Path(f"/proc/{pid}/status").read_text()
                hwm = re.search(r"VmHWM:\s+(\d+)", status)
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                if hwm and "resource_tracker" not in cmd:  # multiprocessing's helper
                    out.append({"pid": pid, "peak_mib": int(hwm[1]) / 1024, "cmd": cmd[:120]})
    return sorted(out, key=lambda p: -p["peak_mib"])


class Fleet:
    """The servers this run started; every one is stopped (its whole group) on exit."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], ready_url: str, *,
              env: dict[str, str | None] | None = None, cwd: Path | None = None,
              timeout: float = 90.0) -> subprocess.Popen[bytes]:
        """Start a server in its own process group; `None` in `env` removes a variable."""
        merged = {**os.environ, **(env or {})}
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                env={k: v for k, v in merged.items() if v is not None},
                                start_new_session=True)
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {proc.returncode} at start:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=2).status_code < 500:
                    return proc
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready after {timeout:.0f} s: {ready_url}")

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_target(self, target: Target) -> None:
        """Stop the processes (each with its workers) that serve `target`."""
        for proc in [p for p in self.procs if p.pid in target.pids]:
            self.stop(proc)

    def close(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


# --------------------------------------------------------------------------- targets


@dataclass
class Target:
    """Something the load generator drives: its URLs, headers and measured processes."""

    name: str
    urls: list[str]
    headers: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    workers: int = 1
    info: dict[str, Any] = field(default_factory=dict)


HG_ENV: dict[str, str | None] = {}
"""Environment of every Harbourgate process: PYTHONPATH to the source snapshot."""


def snapshot_source(work: Path, ref: str | None) -> str:
    """Copy the code under test aside, so edits to the tree during the run cannot touch it.

    `ref` measures a commit exactly (`git archive`); without it, the working tree as it
    is now. Returns a label for the report: the commit, and whether src/ had changes.
    """
    git = ["git", "-C", str(ROOT)]
    rev = subprocess.run([*git, "rev-parse", "--short", ref or "HEAD"], capture_output=True,
                         text=True, check=True).stdout.strip()
    if ref:
        archive = subprocess.run([*git, "archive", ref, "src"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive.stdout, check=True)
        label = rev
    else:
        shutil.copytree(ROOT / "src", work / "src",
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        dirty = subprocess.run([*git, "status", "--porcelain", "src"], capture_output=True,
                               text=True, check=True).stdout.strip()
        label = f"{rev} + uncommitted changes in src/" if dirty else rev
    HG_ENV["PYTHONPATH"] = str(work / "src")
    return label


def start_standin(fleet: Fleet, name: str = "stand-in") -> Target:
    port = free_port()
    proc = fleet.start(name, [sys.executable, "-m", "harbourgate", "stand-in", "--port",
                                    str(port)], f"http://127.0.0.1:{port}/v1/models",
                       env=HG_ENV)
    return Target("direct", [f"http://127.0.0.1:{port}/v1/chat/completions"], pids=[proc.pid],
                  info={"base": f"http://127.0.0.1:{port}/v1"})


def verifier(work: Path) -> tuple[Path, str]:
    """A JWKS with one Ed25519 key, and an attestation it signed (an HK national)."""
    from jwcrypto import jwk, jws

    key = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid="bench-verifier")
    path = work / "verifiers.jwks.json"
    path.write_text(json.dumps({"keys": [json.loads(key.export_public())]}))
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "u-bench-7f3a", "nationality": ["HK"], "residence": "HK",
              "verification_level": "document", "iat": now, "exp": now + 4 * 3600}
    token = jws.JWS(json.dumps(claims).encode())
    token.add_signature(key, alg="EdDSA",
                        protected=json.dumps({"alg": "EdDSA", "kid": key["kid"]}))
    return path, token.serialize(compact=True)


def harbourgate_config(work: Path, upstream: str, jwks: Path, *, database_url: str | None,
                       redis_url: str | None, pool: list[str] | None = None,
                       extra: dict[str, Any] | None = None) -> Path:
    """The deployment under test: the four packs, one US-hosted route, a CN-origin app;
    with `pool`, the route is a pool of those servers instead of `upstream` alone."""
    config: dict[str, Any] = {
        "data_dir": str(work / "data"),
        "policy": {"packs": ["hk-sandbox", "eu-ai-act", "cross-border", "export-directives"]},
        "verifiers": {"jwks": str(jwks), "issuers": [ISSUER]},
        "routes": [{"name": "fable-5", "provider": "openai", "base_url": upstream,
                    "origin": "US", "hosting": "US", "export_tags": ["us-frontier"],
                    "class": "frontier-chat", "timeout_s": 60}],
        "sandbox": {
            "participants": [{"id": "acme", "name": "Acme Logistics", "jurisdiction": "HK"}],
            "applications": [{"id": "acme-research", "participant": "acme",
                              "name": "Acme research assistant", "use_cases": ["research.b2b"],
                              "data_origin": "CN", "model_preference": ["fable-5"]}]},
    }
    if pool:
        route = config["routes"][0]
        del route["base_url"]
        route["endpoints"] = [{"base_url": url} for url in pool]
    if database_url:
        config["database_url"] = database_url
    if redis_url:
        config["redis_url"] = redis_url
    config.update(extra or {})
    path = work / "harbourgate.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def start_harbourgate(fleet: Fleet, work: Path, upstream: str, *, workers: int,
                      replicas: int = 1, database_url: str | None = None,
                      redis_url: str | None = None, name: str = "harbourgate",
                      pool: list[str] | None = None,
                      extra: dict[str, Any] | None = None) -> Target:
    """`harbourgate serve` (one or more replicas), a fresh API key, an attestation."""
    work.mkdir(parents=True, exist_ok=True)
    jwks, attestation = verifier(work)
    cfg = harbourgate_config(work, upstream, jwks, database_url=database_url,
                             redis_url=redis_url, pool=pool, extra=extra)
    ports = [free_port() for _ in range(replicas)]
    procs = [fleet.start(f"{name}-{i}", [sys.executable, "-m", "harbourgate", "serve",
                                         "--config", str(cfg), "--port", str(port),
                                         "--workers", str(workers)],
                         f"http://127.0.0.1:{port}/readyz",
                         env={**HG_ENV, "HARBOURGATE_ADMIN_TOKEN": ADMIN_TOKEN}, cwd=work)
             for i, port in enumerate(ports)]
    answer = httpx.post(f"http://127.0.0.1:{ports[0]}/admin/v1/applications/acme-research/keys",
                        headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, json={}, timeout=10)
    answer.raise_for_status()
    key = answer.json()["key"]
    target = Target(name, [f"http://127.0.0.1:{p}/v1/chat/completions" for p in ports],
                    [f"authorization: Bearer {key}", f"x-harbourgate-attestation: {attestation}"],
                    [p.pid for p in procs], workers * replicas,
                    {"replicas": replicas, "workers_per_replica": workers,
                     "storage": "PostgreSQL + Redis" if database_url else "SQLite"})
    for url in target.urls:  # a key issued on one replica must work on every replica
        wait_accepted(url, target.headers)
    return target


def wait_accepted(url: str, headers: list[str], timeout: float = 15.0) -> None:
    body = {"model": "fable-5", "messages": [{"role": "user", "content": "ping"}]}
    deadline = time.monotonic() + timeout
    status = 0
    while time.monotonic() < deadline:
        status = httpx.post(url, json=body, headers=header_dict(headers), timeout=10).status_code
        if status == 200:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} still answers {status} after {timeout:.0f} s")


def start_litellm(fleet: Fleet, upstream: str, *, workers: int) -> Target:
    """LiteLLM proxy from its own venv against the same stand-in, `--num_workers N`."""
    exe = LITELLM_VENV / "bin" / "litellm"
    if not exe.exists():
        raise RuntimeError(f"{exe} is missing: run bench/litellm/setup.sh")
    port = free_port()
    proc = fleet.start(
        f"litellm-w{workers}",
        [str(exe), "--config", str(BENCH / "litellm" / "config.yaml"), "--host", "127.0.0.1",
         "--port", str(port), "--num_workers", str(workers)],
        f"http://127.0.0.1:{port}/health/liveliness",
        env={"BENCH_UPSTREAM_BASE": upstream, "BENCH_LITELLM_MASTER_KEY": LITELLM_KEY,
             "LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
             "DATABASE_URL": None, "STORE_MODEL_IN_DB": "False"},
        timeout=180)
    version = subprocess.run([str(LITELLM_VENV / "bin" / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('litellm'))"],
                             capture_output=True, text=True, check=False).stdout.strip()
    return Target("litellm", [f"http://127.0.0.1:{port}/v1/chat/completions"],
                  [f"authorization: Bearer {LITELLM_KEY}"], [proc.pid], workers,
                  {"version": version})


def header_dict(headers: list[str]) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (h.partition(":") for h in headers)}


# --------------------------------------------------------------------------- probes


def probe_pipeline(hg: Target, direct: Target) -> dict[str, Any]:
    """Evidence of which pipeline stages ran: refusals, headers, what left, what came back."""
    url, headers = hg.urls[0], header_dict(hg.headers)
    recorded = direct.info["base"].removesuffix("/v1") + "/_standin/requests"
    body = chat_body(False)
    checks: dict[str, Any] = {}
    no_key = httpx.post(url, json=body, timeout=10)
    checks["key"] = _refused(no_key, 401, "invalid_api_key")
    forged = {**headers, "x-harbourgate-attestation":
              headers["x-harbourgate-attestation"][:-4] + "AAAA"}
    checks["attestation"] = _refused(httpx.post(url, json=body, headers=forged, timeout=10),
                                     401, "invalid_attestation")
    httpx.delete(recorded, timeout=10)
    ok = httpx.post(url, json=body, headers=headers, timeout=30)
    sent = json.dumps(httpx.get(recorded, timeout=10).json(), ensure_ascii=False)
    answer = ok.json()["choices"][0]["message"]["content"] if ok.status_code == 200 else ""
    hdr = {k: v for k, v in ok.headers.items() if k.startswith("x-harbourgate-")}
    checks["policy"] = {"ok": "x-harbourgate-policy" in hdr,
                        "evidence": hdr.get("x-harbourgate-policy", "no X-Harbourgate-Policy")}
    leaked = [v for v in RAW_VALUES if v in sent]
    checks["privacy"] = {"ok": bool(hdr.get("x-harbourgate-pseudonymised")) and not leaked,
                         "evidence": f"pseudonymised {hdr.get('x-harbourgate-pseudonymised')}; "
                                     f"raw values seen upstream: {leaked or 'none'}"}
    checks["restore"] = {"ok": PHONE in answer, "evidence": answer[:160]}
    checks["audit"] = {"ok": bool(hdr.get("x-harbourgate-audit")),
                       "evidence": hdr.get("x-harbourgate-audit", "no X-Harbourgate-Audit")}
    return {"status": ok.status_code, "headers": hdr, "checks": checks,
            "prompt_bytes": len(json.dumps(body, ensure_ascii=False).encode())}


def _refused(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    try:
        got = r.json().get("error", {}).get("code")
    except ValueError:
        got = None
    return {"ok": r.status_code == status and got == code,
            "evidence": f"{r.status_code} {got}"}


def probe_litellm(ll: Target) -> dict[str, Any]:
    r = httpx.post(ll.urls[0], json=chat_body(False), headers=header_dict(ll.headers),
                   timeout=60)
    answer = r.json()["choices"][0]["message"]["content"] if r.status_code == 200 else r.text
    return {"status": r.status_code, "proxied": PHONE in answer, "answer": answer[:160]}


# --------------------------------------------------------------------------- measuring


class Clock:
    """The global time cap: measurements stop once it is spent."""

    def __init__(self, minutes: float) -> None:
        self.deadline = time.monotonic() + minutes * 60

    def left(self) -> float:
        return self.deadline - time.monotonic()


@dataclass
class Tally:
    """One target at one level, pooled over interleaved rounds."""

    latencies: list[float] = field(default_factory=list)
    first_bytes: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    cpu_s: float = 0.0
    upstream_cpu_s: float = 0.0
    loadgen_cpu_s: float = 0.0
    timed_out: bool = False

    def add(self, out: dict[str, Any], cpu: float, upstream_cpu: float) -> None:
        self.latencies += out["latencies_s"]
        self.first_bytes += out["first_bytes_s"]
        self.seconds += out["seconds"]
        for k, v in out["errors"].items():
            self.errors[k] = self.errors.get(k, 0) + v
        self.cpu_s += cpu
        self.upstream_cpu_s += upstream_cpu
        self.loadgen_cpu_s += out["loadgen_cpu_s"]
        self.timed_out |= out["timed_out"]

    def result(self, target: Target) -> dict[str, Any]:
        n = len(self.latencies)
        lat, fb = sorted(self.latencies), sorted(self.first_bytes)
        out = {"requests": n, "errors": self.errors, "seconds": self.seconds,
               "rps": n / self.seconds if self.seconds else 0.0,
               "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "p999_ms": pct(lat, 0.999),
               "cpu_ms_per_req": self.cpu_s * 1000 / n if n else math.nan,
               "upstream_cpu_ms_per_req": self.upstream_cpu_s * 1000 / n if n else math.nan,
               "loadgen_cpu_s": self.loadgen_cpu_s, "timed_out": self.timed_out,
               "workers": target.workers, "processes": peak_memory(target.pids)}
        if fb:
            out |= {"ttfb_p50_ms": pct(fb, 0.5), "ttfb_p99_ms": pct(fb, 0.99)}
        return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))] * 1000


def loadgen(target: Target, body: Path, *, stream: bool, concurrency: int, requests: int,
            max_seconds: float) -> dict[str, Any]:
    """One run of bench/loadgen.py in its own process."""
    argv = [sys.executable, str(BENCH / "loadgen.py"), *target.urls, "--concurrency",
            str(concurrency), "--requests", str(requests), "--body-file", str(body),
            "--max-seconds", f"{max_seconds:.1f}", "--raw",
            "--warmup", str(min(max(concurrency, 20), requests))]
    for h in target.headers:
        argv += ["--header", h]
    if stream:
        argv.append("--stream")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=max_seconds + 120,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


@dataclass
class Plan:
    """How much load: request counts per target kind, rounds, levels, the time cap."""

    levels: list[int]
    requests: dict[str, int]  # "fast" (direct, Harbourgate) and "litellm", per level
    rounds: int
    scaling_requests: dict[str, int]
    scaling_workers: list[int]
    clock: Clock

    def count(self, target: Target, stream: bool, concurrency: int, scaling: bool = False) -> int:
        kind = "litellm" if target.name == "litellm" else "fast"
        n = (self.scaling_requests if scaling else self.requests)[kind]
        if stream:
            n = n * 2 // 3
        if concurrency == 1:
            n //= 2
        return max(n, concurrency * 2, 20)


def measure(targets: list[Target], upstream: Target, bodies: dict[bool, Path], plan: Plan,
            *, stream: bool, concurrency: int, rounds: int, scaling: bool = False
            ) -> dict[str, dict[str, Any]]:
    """Every target at one level, in `rounds` interleaved slices, pooled."""
    tallies = {t.name: Tally() for t in targets}
    for _ in range(rounds):
        for t in targets:
            if plan.clock.left() < 5:
                raise TimeoutError("time cap reached")
            n = max(plan.count(t, stream, concurrency, scaling) // rounds, 1)
            cpu0, up0 = cpu_seconds(t.pids), cpu_seconds(upstream.pids)
            out = loadgen(t, bodies[stream], stream=stream, concurrency=concurrency,
                          requests=n, max_seconds=min(120.0, plan.clock.left() - 2))
            tallies[t.name].add(out, cpu_seconds(t.pids) - cpu0,
                                cpu_seconds(upstream.pids) - up0)
    return {name: tally.result(t) for (name, tally), t in zip(tallies.items(), targets,
                                                               strict=True)}


def say(line: str) -> None:
    print(line, flush=True)


def describe(mode: str, c: int, results: dict[str, dict[str, Any]]) -> None:
    for name, r in results.items():
        errs = sum(r["errors"].values())
        say(f"  {mode:6} c={c:<3} {name:22} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:8.3f} ms  "
            f"p99 {r['p99_ms']:8.3f} ms  p99.9 {r['p999_ms']:8.3f} ms  errors {errs}  "
            f"CPU {r['cpu_ms_per_req']:.3f} ms/req")


# --------------------------------------------------------------------------- the report


def markdown(report: dict[str, Any]) -> str:
    """The docs section: conditions, pipeline evidence, targets, tables, sizing guide."""
    env = report["environment"]
    parts = [
        "## Side by side: Harbourgate, LiteLLM proxy and the direct call",
        "",
        "One command, `bench/run` (`bench/run --quick` for a smoke run of one or two "
        "minutes), starts the stand-in upstream, Harbourgate and LiteLLM proxy on this machine and "
        "drives each with `bench/loadgen.py`, a separate asyncio process, in interleaved "
        "rounds. *Added* is a proxy's percentile minus the direct call's at the same "
        "concurrency. CPU is user + system time of the server's whole process tree per "
        "request; memory is the peak resident set (VmHWM) of its largest process. Raw "
        "figures: `bench/results/compare-*.json`.",
        "",
        f"Measured {env['date']} on {env['cpu']}, {env['cores']} cores (shared by the "
        f"stand-in, the proxy under test and the load generator), Python {env['python']}; "
        f"Harbourgate `{env.get('harbourgate_code', env['harbourgate_commit'])}`, "
        f"LiteLLM {env.get('litellm', '?')}; "
        f"{env['workers']} worker process{'es' if env['workers'] > 1 else ''} each; load "
        f"average {env['load_average_at_start']:.2f} at the start.",
        "",
        *pipeline_section(report),
        *targets_section(report),
    ]
    for stream in (False, True):
        rows = [v for v in report["levels"].values() if v["stream"] is stream]
        if rows:
            parts += level_table(rows, stream)
    parts += scaling_section(report)
    parts += [f"> {note}" for note in report["notes"]]
    parts += ["", "![Throughput and latency by concurrency, and scaling](img/benchmarks.png)"]
    return "\n".join(parts)


def pipeline_section(report: dict[str, Any]) -> list[str]:
    pipe = report.get("pipeline")
    if not pipe:
        return []
    lines = [f"**Pipeline under test.** Each request carries an API key, an end-user "
             f"attestation (EdDSA, checked against the configured JWKS) and a "
             f"{pipe['prompt_bytes']:,}-byte mixed English/Chinese business prompt holding an "
             "HKID, three phone numbers, two e-mail addresses and a name; the application's "
             "data origin is CN and the route is US-hosted, so the cross-border pack "
             "pseudonymises. What a probe before the load observed:",
             "", "| stage | observed | evidence |", "|---|---|---|"]
    for stage, check in pipe["checks"].items():
        evidence = str(check["evidence"]).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {stage} | {'yes' if check['ok'] else '**no**'} | {evidence} |")
    ll = report.get("litellm_probe", {})
    lines += ["", f"LiteLLM answered {ll.get('status')} with the stand-in's echo "
                  f"({'verified' if ll.get('proxied') else '**not verified**'}): it really "
                  "proxies.", ""]
    return lines


def _result(report: dict[str, Any], key: str, name: str) -> dict[str, Any] | None:
    level = report["levels"].get(key)
    return level["results"].get(name) if level else None


def targets_section(report: dict[str, Any]) -> list[str]:
    """PRODUCT.md §6 targets: met, or the measured gap."""
    lines = ["**Targets (PRODUCT.md §6).**", "", "| figure | target | measured | verdict |",
             "|---|---|---|---|"]
    d, g = _result(report, "plain/1", "direct"), _result(report, "plain/1", "harbourgate")
    if d and g:
        for q, limit in (("p50", 0.5), ("p99", 1.0)):
            added = g[f"{q}_ms"] - d[f"{q}_ms"]
            verdict = "met" if added <= limit else f"not met: {added - limit:.3f} ms over"
            lines.append(f"| latency added, concurrency 1, {q} | ≤ {limit} ms | "
                         f"{added:.3f} ms | {verdict} |")
        lines.append(f"| gateway CPU per request, concurrency 1 | (bounds the added latency) | "
                     f"{g['cpu_ms_per_req']:.3f} ms | |")
    for mode in ("plain", "stream"):
        g, ll = (_result(report, f"{mode}/64", n) for n in ("harbourgate", "litellm"))
        if g and ll and ll["rps"]:
            ratio = g["rps"] / ll["rps"]
            verdict = "met" if ratio >= 30 else f"not met: {ratio / 30:.0%} of the target"
            lines.append(f"| throughput vs LiteLLM, concurrency 64, {mode} | ≥ 30× | "
                         f"{g['rps']:,.0f} vs {ll['rps']:,.0f} req/s = {ratio:.1f}× | "
                         f"{verdict} |")
    for name, label in (("harbourgate", "Harbourgate"), ("litellm", "LiteLLM")):
        peaks = [p["peak_mib"] for lv in report["levels"].values()
                 for p in lv["results"].get(name, {}).get("processes", [])]
        if peaks:
            lines.append(f"| memory per worker, {label} | stated | {max(peaks):.0f} MiB peak "
                         f"RSS | |")
    return [*lines, "", *gap_analysis(report), ""]


def gap_analysis(report: dict[str, Any]) -> list[str]:
    """Why the figures are what they are: on a saturated machine, CPU per request rules."""
    g, ll = (_result(report, "plain/64", n) for n in ("harbourgate", "litellm"))
    one = _result(report, "plain/1", "harbourgate")
    if not (g and ll and one):
        return []
    ratio = ll["cpu_ms_per_req"] / g["cpu_ms_per_req"]
    return [f"At concurrency 64 both proxies saturate their one worker, so throughput is set "
            f"by CPU per request: LiteLLM spends {ll['cpu_ms_per_req']:.2f} ms, Harbourgate "
            f"{g['cpu_ms_per_req']:.3f} ms ({ratio:.1f}× less), which bounds the throughput "
            f"ratio. A 30× ratio needs Harbourgate at about {ll['cpu_ms_per_req'] / 30:.2f} ms "
            f"of CPU per request with this prompt. At concurrency 1 the added latency follows "
            f"the same cost: the pipeline's {one['cpu_ms_per_req']:.3f} ms of CPU per request "
            "is spent on the request path (key, attestation, scan, policy, pseudonymise, "
            "audit commit, forward, restore)."]


def level_table(rows: list[dict[str, Any]], stream: bool) -> list[str]:
    head = ("| concurrency | target | req/s | p50 ms | p99 ms | p99.9 ms | added p50 ms "
            "| added p99 ms | errors | CPU ms/req | peak MiB |")
    if stream:
        head += " first byte p50 ms |"
    lines = ["", f"### {'Streaming (SSE)' if stream else 'Plain'} requests", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for row in sorted(rows, key=lambda r: r["concurrency"]):
        res = row["results"]
        base = res.get("direct")
        for name, r in res.items():
            added = (f"{r['p50_ms'] - base['p50_ms']:.3f} | {r['p99_ms'] - base['p99_ms']:.3f}"
                     if base and name != "direct" else "– | –")
            peak = max((p["peak_mib"] for p in r["processes"]), default=math.nan)
            errs = sum(r["errors"].values())
            label = {"direct": "direct", "harbourgate": "**Harbourgate**",
                     "litellm": "LiteLLM"}.get(name, name)
            line = (f"| {row['concurrency']} | {label} | {r['rps']:,.0f} | {r['p50_ms']:.3f} | "
                    f"{r['p99_ms']:.3f} | {r['p999_ms']:.3f} | {added} | "
                    f"{errs}{' (time cap)' if r['timed_out'] else ''} | "
                    f"{r['cpu_ms_per_req']:.3f} | {peak:.0f} |")
            if stream:
                line += f" {r.get('ttfb_p50_ms', math.nan):.3f} |"
            lines.append(line)
    return lines


def scaling_section(report: dict[str, Any]) -> list[str]:
    rows = report["scaling"]
    if not rows:
        return []
    c = rows[0]["concurrency"]
    lines = ["", f"### Scaling (plain requests, concurrency {c})", "",
             "| deployment | worker processes | req/s | p50 ms | p99 ms | errors | CPU ms/req "
             "| peak MiB per worker |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        r = row["result"]
        workers = [p["peak_mib"] for p in r["processes"]]
        per_worker = max(workers, default=math.nan)
        lines.append(f"| {row['label']} | {row['workers']} | {r['rps']:,.0f} | "
                     f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {sum(r['errors'].values())} | "
                     f"{r['cpu_ms_per_req']:.3f} | {per_worker:.0f} |")
    return lines + sizing_guide(report)


def sizing_guide(report: dict[str, Any]) -> list[str]:
    """Workers, cores and memory for a target request rate, from this run's figures."""
    hg = [r for r in report["scaling"] if r["name"] == "harbourgate"]
    single = next((r for r in hg if r.get("storage") == "SQLite" and r["workers"] == 1), None)
    if not single:
        return []
    cpu = single["result"]["cpu_ms_per_req"]
    mem = max(p["peak_mib"] for p in single["result"]["processes"])
    per_core = 1000 / cpu
    pg = next((r for r in hg if r.get("storage") != "SQLite" and r.get("replicas") == 1), None)
    lines = ["", "### Sizing guide", "",
             f"From the run above: one Harbourgate worker costs {cpu:.3f} ms of CPU per plain "
             f"request, so a fully busy core serves about {per_core:,.0f} requests/s; a worker "
             f"holds {mem:.0f} MiB at peak. Plan one worker per core at no more than 70 % "
             "utilisation, so bursts and streams have headroom:",
             "", "| sustained requests/s | workers (= cores) | memory |", "|---|---|---|"]
    for rate in (500, 2000, 5000, 20000):
        workers = max(1, math.ceil(rate / (per_core * 0.7)))
        lines.append(f"| {rate:,} | {workers} | {workers * mem / 1024:.1f} GiB "
                     f"(+ the supervisor) |")
    lines += ["", "- **Workers on one host** share one SQLite file; the table above shows how "
              "far extra workers help on this machine. Beyond the host's cores they only add "
              "contention: size workers to cores, not to concurrency.",
              "- **Replicas** (PostgreSQL + Redis) are for more than one host or for "
              "availability: every replica is the same stateless process, put them behind any "
              "load balancer."]
    if pg:
        pcpu = pg["result"]["cpu_ms_per_req"]
        lines.append(f"  On PostgreSQL a request costs {pcpu:.3f} ms of CPU in the gateway "
                     f"({pcpu / cpu - 1:+.0%} against SQLite), and the database's own CPU is "
                     "on top; on a single 2-core machine two replicas compete with the "
                     "database, Redis, the stand-in and the load generator, so their figure "
                     "here is a floor.")
    lines.append("- **Streams** cost more CPU per request than plain calls (the streaming "
                 "table's CPU column): size on the streaming figure if most traffic streams.")
    return lines


def write_doc(section: str) -> None:
    """Replace this benchmark's section of docs/benchmarks.md; the rest stays as it is."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{section}\n{END}"
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text,
                      flags=re.S)
    else:
        text = text.rstrip("\n") + f"\n\n{block}\n"
    DOC.write_text(text)


# --------------------------------------------------------------------------- the run


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A throw-away PostgreSQL database for the replica run; dropped afterwards."""
    import psycopg

    name = "hgbench_" + secrets.token_hex(4)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = make_plan(args)
    work = Path(tempfile.mkdtemp(prefix="hg-compare-"))
    bodies = {s: work / f"body-{'stream' if s else 'plain'}.json" for s in (False, True)}
    for s, path in bodies.items():
        path.write_text(json.dumps(chat_body(s), ensure_ascii=False))
    report: dict[str, Any] = {"environment": environment(args), "levels": {}, "scaling": [],
                              "notes": []}
    report["environment"]["harbourgate_code"] = snapshot_source(work, args.ref)
    fleet = Fleet(work)
    try:
        direct = start_standin(fleet)
        upstream = direct.info["base"]
        say(f"stand-in on {upstream}; starting Harbourgate and LiteLLM "
            f"({args.workers} worker{'s' if args.workers > 1 else ''} each)")
        hg = start_harbourgate(fleet, work / "hg", upstream, workers=args.workers)
        ll = start_litellm(fleet, upstream, workers=args.workers)
        report["environment"]["litellm"] = ll.info["version"]
        report["pipeline"] = probe_pipeline(hg, direct)
        report["litellm_probe"] = probe_litellm(ll)
        for stage, check in report["pipeline"]["checks"].items():
            say(f"  pipeline {stage:12} {'active' if check['ok'] else 'NOT OBSERVED':13} "
                f"{check['evidence']}")
        say(f"  litellm proxies: {report['litellm_probe']['proxied']}")
        targets = [direct, hg, ll]
        try:
            for stream in (False, True):
                mode = "stream" if stream else "plain"
                for c in plan.levels:
                    res = measure(targets, direct, bodies, plan, stream=stream, concurrency=c,
                                  rounds=plan.rounds)
                    report["levels"][f"{mode}/{c}"] = {"stream": stream, "concurrency": c,
                                                       "results": res}
                    describe(mode, c, res)
            fleet.stop_target(ll)
            fleet.stop_target(hg)
            scaling(report, fleet, work, direct, bodies, plan, args)
        except TimeoutError:
            report["notes"].append("stopped early: the global time cap was reached")
            say("time cap reached; writing what was measured")
        except RuntimeError as exc:  # a server died, the load generator failed
            report["notes"].append(f"stopped early: {str(exc).splitlines()[0]}")
            say(f"stopped early, writing what was measured: {exc}")
    finally:
        fleet.close()
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if args.keep:
        say(f"kept the work directory with every server's log: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return report


def scaling(report: dict[str, Any], fleet: Fleet, work: Path, direct: Target,
            bodies: dict[bool, Path], plan: Plan, args: argparse.Namespace) -> None:
    """Plain requests at the scaling concurrency, by worker count and deployment shape.

    Each deployment is measured on its own; one that fails to start is noted and skipped,
    so the figures already taken are kept.
    """
    c = args.scaling_concurrency
    upstream = direct.info["base"]

    def one(label: str, start: Any) -> None:
        target = None
        try:
            target = start()
            res = measure([target], direct, bodies, plan, stream=False, concurrency=c,
                          rounds=1, scaling=True)[target.name]
        except TimeoutError:
            raise
        except Exception as exc:  # psycopg, httpx, a server that would not start, ...
            report["notes"].append(f"{label}: not measured: {str(exc).splitlines()[0]}")
            say(f"  {label}: not measured: {exc}")
            return
        finally:
            if target is not None and target is not direct:
                fleet.stop_target(target)
        report["scaling"].append({"label": label, "name": target.name, "concurrency": c,
                                  **target.info, "workers": target.workers, "result": res})
        describe("plain", c, {label: res})

    one("direct (stand-in)", lambda: direct)
    for w in plan.scaling_workers:
        one(f"Harbourgate, SQLite, {w} worker{'s' if w > 1 else ''}",
            lambda w=w: start_harbourgate(fleet, work / f"hg-w{w}", upstream, workers=w))
    servers = [start_standin(fleet, f"stand-in-pool-{i}") for i in range(POOL_SIZE - 1)]
    one(f"Harbourgate, SQLite, 1 worker, the route a pool of {POOL_SIZE} stand-ins",
        lambda: start_harbourgate(fleet, work / "hg-pool", upstream, workers=1,
                                  pool=[upstream, *(s.info["base"] for s in servers)]))
    for server in servers:
        fleet.stop_target(server)
    if args.postgres and args.redis:
        for replicas in (1, 2):
            with contextlib.ExitStack() as stack:
                def start_replicas(replicas: int = replicas,
                                   stack: contextlib.ExitStack = stack) -> Target:
                    db = stack.enter_context(postgres_database(args.postgres))
                    return start_harbourgate(fleet, work / f"hg-pg{replicas}", upstream,
                                             workers=1, replicas=replicas, database_url=db,
                                             redis_url=args.redis)
                one(f"Harbourgate, PostgreSQL + Redis, {replicas} "
                    f"replica{'s' if replicas > 1 else ''} x 1 worker", start_replicas)
    for w in plan.scaling_workers:
        if w != args.workers:  # the main comparison measured that one
            one(f"LiteLLM, {w} workers",
                lambda w=w: start_litellm(fleet, upstream, workers=w))
    with otlp_sink() as sink:
        for slug, label, extra in observability_variants(sink):
            one(f"Harbourgate, 1 worker, {label}",
                lambda slug=slug, extra=extra: start_harbourgate(
                    fleet, work / f"hg-obs-{slug}", upstream, workers=1,
                    name="harbourgate-obs", extra=extra))
    report["notes"] += observability_notes(report)


def observability_variants(sink: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Access log off / text / json, and OpenTelemetry exporting to a local sink (issue 15)."""
    return [
        ("base", "access log off", {"logging": {"access": False}}),
        ("text", "access log on (text)", {"logging": {"access": True, "format": "text"}}),
        ("json", "access log on (json)", {"logging": {"access": True, "format": "json"}}),
        ("otel", "access log off, OpenTelemetry on",
         {"logging": {"access": False}, "telemetry": {"otlp_endpoint": sink}}),
    ]


@contextlib.contextmanager
def otlp_sink() -> Iterator[str]:
    """An OTLP/HTTP endpoint that accepts every export (an empty protobuf answer)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def observability_notes(report: dict[str, Any]) -> list[str]:
    """The closing note: what each observability setting costs against access log off."""
    rows = {r["label"].split(", ", 2)[2]: r["result"] for r in report["scaling"]
            if r["name"] == "harbourgate-obs"}
    base = rows.get("access log off")
    if base is None:
        return []
    costs = []
    for label, r in rows.items():
        if r is base:
            continue
        costs.append(f"{label}: {r['p50_ms'] - base['p50_ms']:+.3f} ms p50, "
                     f"{r['p99_ms'] - base['p99_ms']:+.3f} ms p99, "
                     f"{r['cpu_ms_per_req'] - base['cpu_ms_per_req']:+.3f} CPU ms/req, "
                     f"{r['rps'] / base['rps'] - 1:+.1%} req/s")
    return [f"Observability, 1 worker, against access log off: {'; '.join(costs)}."]


def make_plan(args: argparse.Namespace) -> Plan:
    clock = Clock(args.max_minutes)
    if args.quick:
        return Plan(args.levels or [1, 64], {"fast": 600, "litellm": 120}, 1,
                    {"fast": 600, "litellm": 120}, [1, 2], clock)
    return Plan(args.levels or [1, 16, 64, 256], {"fast": 3000, "litellm": 900}, 3,
                {"fast": 3000, "litellm": 600}, [1, 2, 4], clock)


def environment(args: argparse.Namespace) -> dict[str, Any]:
    harbourgate_rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True, check=False).stdout.strip()
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())
    return {"date": time.strftime("%Y-%m-%d"), "cpu": model, "cores": os.cpu_count(),
            "python": platform.python_version(), "harbourgate_commit": harbourgate_rev,
            "workers": args.workers, "quick": args.quick,
            "load_average_at_start": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a short smoke run (c=1 and 64, few requests); writes no docs")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes of each proxy in the main comparison")
    parser.add_argument("--levels", type=lambda s: [int(c) for c in s.split(",")],
                        help="concurrency levels [1,16,64,256]")
    parser.add_argument("--scaling-concurrency", type=int, default=64)
    parser.add_argument("--postgres", default=os.environ.get(
        "HARBOURGATE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="an admin URL; the replica run creates and drops its own database ('' skips)")
    parser.add_argument("--redis", default=os.environ.get(
        "HARBOURGATE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--max-minutes", type=float, default=14.0, help="global time cap")
    parser.add_argument("--no-write", action="store_true", help="print only; touch no docs")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--ref", help="measure this commit (default: the working tree, "
                                      "copied at the start of the run)")
    args = parser.parse_args()
    if args.workers < 1 or any(c < 1 for c in args.levels or []):
        parser.error("--workers and every concurrency level must be at least 1")
    report = run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw = RESULTS / f"compare-{stamp}{'-quick' if args.quick else ''}.json"
    raw.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    say(f"raw results: {raw.relative_to(ROOT)}")
    section = markdown(report)
    say(section)
    if not (args.no_write or args.quick):
        import plot  # bench/plot.py, beside this file

        write_doc(section)
        plot.render(report, PLOT)
        say(f"wrote {DOC.relative_to(ROOT)} and {PLOT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
