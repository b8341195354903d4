"""Harbourgate side by side with LiteLLM proxy and the direct call (PRODUCT.md §6, issue 17).

    bench/run [--quick] [--workers 1] [--levels 1,16,64,256] [--baseline REF]
              [--max-workers N] [--no-write]

One run on one machine, everything on 127.0.0.1 and bounded in requests and time:

1. starts the stand-in upstream (`harbourgate stand-in`), then Harbourgate
   (`harbourgate serve`: API key, an end-user attestation checked against a JWKS, the four
   policy packs, the privacy scan of a ~2 KB mixed English/Chinese business prompt whose
   mainland origin makes the cross-border pack pseudonymise it for a US-hosted route, and
   the group-commit audit log) and LiteLLM proxy (from PyPI, in bench/.venv-litellm, the
   same stand-in as an OpenAI-compatible upstream, no database, no callbacks), each with
   the same number of worker processes; with `--baseline REF`, a second Harbourgate built
   from that commit too, so a speed change is measured before and after in one run;
2. probes that the pipeline really runs (a missing key and a forged attestation are
   refused; for each request variant, the upstream receives pseudonyms, or the prompt
   unchanged when it holds no personal data, and the answer has the original values back);
3. drives every target with `bench/loadgen.py`, a separate asyncio process, in
   interleaved rounds so background noise hits them alike, for four request variants:
   (a) the full pipeline with the personal-data prompt, plain; (b) the same pipeline with a
   prompt of the same size holding no personal data; (c) (a) streamed; (d) (a) through the
   Responses API, streamed. (a) and (c) at every concurrency level, (b) and (d) at 1 and 64.
   CPU and peak memory come from /proc for each server's whole process tree;
4. measures scaling: Harbourgate with 1, 2, 4 and 8 workers (those the machine's cores
   cover, and always 1 and 2) on SQLite and on PostgreSQL + Redis, two replicas, a pool
   route, LiteLLM with more workers, then the observability settings; per row the ratio to
   one worker, CPU busy per worker and the mean audit-commit wait from /metrics;
5. writes raw JSON to bench/results/, its section of docs/benchmarks.md (targets,
   before/after, one table per variant, scaling, a sizing guide per variant) and the plot
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
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
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
MODEL = "fable-5"
RESPONSES_MODEL = "fable-5-responses"
"""A second route to the same stand-in whose upstream speaks the Responses API natively
(`api: responses`), so Responses callers pass through as they do in LiteLLM."""
BASELINE = "harbourgate-base"
COMMIT_WAIT = "harbourgate_audit_commit_wait_seconds"
"""The histogram of time a request waits for its audit commit, where /metrics exports it."""
SCALING_TARGET = 0.8
"""Issue 17: W workers serve at least 0.8·W times what one serves."""

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
SYSTEM = "You are an analyst. Context document follows.\n\n"

_ESCALATIONS = DOCUMENT[DOCUMENT.index("2. Customer"):DOCUMENT.index("3. Pipeline")]
_CLEAN_ESCALATIONS = """2. Customer escalations / 客戶投訴
A customer in the Kwun Tong warehouse district reported that the dashboard exports in
Traditional Chinese truncate long warehouse names; support reproduced it on staging.
另一家深圳客戶反映報表延遲約兩小時，客戶成功團隊已經跟進。Both tickets are open with engineering;
target fix is the 4.2 release.

"""
CLEAN_QUESTION = ("請用不超過一百五十字總結以上季度回顧，列出三個主要風險及建議行動。Please also "
                  "draft a short reply to the warehouse-name escalation confirming the 4.2 "
                  "fix date.")
_FILLER = " The freight index methodology is unchanged from the previous quarter."


def chat_body(stream: bool, document: str = DOCUMENT, question: str = QUESTION
              ) -> dict[str, Any]:
    """The request every target gets: the document as context, then the question."""
    return {"model": MODEL, "stream": stream, "messages": [
        {"role": "system", "content": SYSTEM + document},
        {"role": "user", "content": question}]}


def _size(body: dict[str, Any]) -> int:
    return len(json.dumps(body, ensure_ascii=False).encode())


def clean_document() -> str:
    """The document without personal data, padded to the same request size as the
    original, so variant (b) differs from (a) in what the scan finds and nothing else."""
    base = DOCUMENT.replace(_ESCALATIONS, _CLEAN_ESCALATIONS)
    gap = _size(chat_body(False)) - _size(chat_body(False, base, CLEAN_QUESTION))
    if gap < 0:
        raise AssertionError("the clean document must not be longer than the original")
    return base.rstrip("\n") + (_FILLER * (gap // len(_FILLER) + 1))[:gap] + "\n"


def responses_body() -> dict[str, Any]:
    """(a) in the Responses API's shape: the document as instructions, the question as input."""
    return {"model": RESPONSES_MODEL, "stream": True, "instructions": SYSTEM + DOCUMENT,
            "input": QUESTION}


@dataclass(frozen=True)
class Variant:
    """One kind of request every target gets: its API path, body, and whether it streams."""

    key: str
    title: str
    path: str  # under each target's /v1
    stream: bool
    personal_data: bool
    body: dict[str, Any]
    every_level: bool  # False: only at concurrency 1 and 64 (keeps the run in its cap)

    @property
    def letter(self) -> str:
        return self.title[:3]


VARIANTS = (
    Variant("plain", "(a) full pipeline, personal data in the prompt, plain chat",
            "chat/completions", False, True, chat_body(False), True),
    Variant("clean", "(b) the same pipeline, no personal data in the prompt, plain chat",
            "chat/completions", False, False, chat_body(False, clean_document(),
                                                         CLEAN_QUESTION), False),
    Variant("stream", "(c) full pipeline, personal data in the prompt, streaming chat",
            "chat/completions", True, True, chat_body(True), True),
    Variant("responses", "(d) full pipeline, personal data in the prompt, streaming "
            "Responses API", "responses", True, True, responses_body(), False),
)
VARIANT = {v.key: v for v in VARIANTS}


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


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process, all threads (OSError once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (IndexError, ValueError) as exc:
        raise OSError(f"/proc/{pid}/stat: {exc}") from exc


def cpu_seconds(roots: list[int]) -> float:
    """User + system CPU of every process in the trees under `roots`, all threads."""
    total = 0.0
    for root in roots:
        for pid in process_tree(root):
            with contextlib.suppress(OSError):
                total += process_cpu(pid)
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


def pinned(cpus: set[int] | None) -> Callable[[], None] | None:
    """A `preexec_fn` that pins a child to `cpus` (None: no pinning)."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


class Fleet:
    """The servers this run started; every one is stopped (its whole group) on exit."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], ready_url: str, *,
              env: dict[str, str | None] | None = None, cwd: Path | None = None,
              timeout: float = 90.0, cpus: set[int] | None = None
              ) -> subprocess.Popen[bytes]:
        """Start a server in its own process group; `None` in `env` removes a variable;
        `cpus` pins it (and every process it starts) to those cores."""
        merged = {**os.environ, **(env or {})}
        path, n = self.logs / f"{name}.log", 1
        while path.exists():  # a later server of the same name keeps the earlier log
            n += 1
            path = self.logs / f"{name}.{n}.log"
        log = path.open("wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                env={k: v for k, v in merged.items() if v is not None},
                                start_new_session=True, preexec_fn=pinned(cpus))
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = path.read_text(errors="replace")[-2000:]
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
    """Something the load generator drives: its servers, headers and measured processes."""

    name: str
    bases: list[str]  # each server's http://127.0.0.1:PORT/v1
    headers: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    workers: int = 1
    info: dict[str, Any] = field(default_factory=dict)
    label: str = ""  # its name in the tables
    skip: set[str] = field(default_factory=set)  # variants it cannot serve (noted why)

    def urls(self, path: str = "chat/completions") -> list[str]:
        return [f"{base}/{path}" for base in self.bases]

    def metrics_urls(self) -> list[str]:
        """Harbourgate's /metrics on each server (empty for the others)."""
        if not self.info.get("metrics"):
            return []
        return [base.removesuffix("/v1") + "/metrics" for base in self.bases]


HG_ENV: dict[str, str | None] = {}
"""Environment of every Harbourgate process: PYTHONPATH to the source snapshot."""


def snapshot_source(work: Path, ref: str | None,
                    env: dict[str, str | None] | None = None) -> str:
    """Copy the code under test aside, so edits to the tree during the run cannot touch it.

    `ref` measures a commit exactly (`git archive`); without it, the working tree as it
    is now. Sets PYTHONPATH in `env` (default: `HG_ENV`, the code under test) and returns
    a label for the report: the commit, and whether src/ had changes.
    """
    git = ["git", "-C", str(ROOT)]
    rev = subprocess.run([*git, "rev-parse", "--short", ref or "HEAD"], capture_output=True,
                         text=True, check=True).stdout.strip()
    work.mkdir(parents=True, exist_ok=True)
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
    (HG_ENV if env is None else env)["PYTHONPATH"] = str(work / "src")
    return label


def start_standin(fleet: Fleet, name: str = "stand-in", cpus: set[int] | None = None
                  ) -> Target:
    port = free_port()
    proc = fleet.start(name, [sys.executable, "-m", "harbourgate", "stand-in", "--port",
                                    str(port)], f"http://127.0.0.1:{port}/v1/models",
                       env=HG_ENV, cpus=cpus)
    base = f"http://127.0.0.1:{port}/v1"
    return Target("direct", [base], pids=[proc.pid], info={"base": base}, label="direct")


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
    """The deployment under test: the four packs, a US-hosted route (and its Responses
    twin), a CN-origin app; with `pool`, the chat route is a pool of those servers."""
    route = {"provider": "openai", "base_url": upstream, "origin": "US", "hosting": "US",
             "export_tags": ["us-frontier"], "class": "frontier-chat", "timeout_s": 60}
    config: dict[str, Any] = {
        "data_dir": str(work / "data"),
        "policy": {"packs": ["hk-sandbox", "eu-ai-act", "cross-border", "export-directives"]},
        "verifiers": {"jwks": str(jwks), "issuers": [ISSUER]},
        "routes": [{"name": MODEL, **route},
                   {"name": RESPONSES_MODEL, **route, "api": "responses"}],
        "sandbox": {
            "participants": [{"id": "acme", "name": "Acme Logistics", "jurisdiction": "HK"}],
            "applications": [{"id": "acme-research", "participant": "acme",
                              "name": "Acme research assistant", "use_cases": ["research.b2b"],
                              "data_origin": "CN", "model_preference": [MODEL]}]},
    }
    if pool:
        chat = config["routes"][0]
        del chat["base_url"]
        chat["endpoints"] = [{"base_url": url} for url in pool]
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
                      pool: list[str] | None = None, extra: dict[str, Any] | None = None,
                      env: dict[str, str | None] | None = None,
                      label: str = "Harbourgate", cpus: set[int] | None = None) -> Target:
    """`harbourgate serve` (one or more replicas), a fresh API key, an attestation; `env`
    (default `HG_ENV`) picks the code: the baseline has its own."""
    work.mkdir(parents=True, exist_ok=True)
    jwks, attestation = verifier(work)
    cfg = harbourgate_config(work, upstream, jwks, database_url=database_url,
                             redis_url=redis_url, pool=pool, extra=extra)
    ports = [free_port() for _ in range(replicas)]
    procs = [fleet.start(f"{name}-{i}", [sys.executable, "-m", "harbourgate", "serve",
                                         "--config", str(cfg), "--port", str(port),
                                         "--workers", str(workers)],
                         f"http://127.0.0.1:{port}/readyz",
                         env={**(HG_ENV if env is None else env),
                              "HARBOURGATE_ADMIN_TOKEN": ADMIN_TOKEN}, cwd=work, cpus=cpus)
             for i, port in enumerate(ports)]
    answer = httpx.post(f"http://127.0.0.1:{ports[0]}/admin/v1/applications/acme-research/keys",
                        headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, json={}, timeout=10)
    answer.raise_for_status()
    key = answer.json()["key"]
    target = Target(name, [f"http://127.0.0.1:{p}/v1" for p in ports],
                    [f"authorization: Bearer {key}", f"x-harbourgate-attestation: {attestation}"],
                    [p.pid for p in procs], workers * replicas,
                    {"replicas": replicas, "workers_per_replica": workers, "metrics": True,
                     "storage": ("PostgreSQL + Redis" if redis_url else "PostgreSQL")
                     if database_url else "SQLite"}, label)
    for url in target.urls():  # a key issued on one replica must work on every replica
        wait_accepted(url, target.headers, workers)
    return target


def wait_accepted(url: str, headers: list[str], workers: int, timeout: float = 30.0) -> None:
    """Until the key works on every worker behind `url`: each new connection may reach
    another worker, so ask for many answers in a row (8 per worker), not just one."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "ping"}]}
    deadline = time.monotonic() + timeout
    status, streak = 0, 0
    while time.monotonic() < deadline:
        status = httpx.post(url, json=body, headers=header_dict(headers), timeout=10).status_code
        streak = streak + 1 if status == 200 else 0
        if streak >= 8 * workers:
            return
        if status != 200:
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
    return Target("litellm", [f"http://127.0.0.1:{port}/v1"],
                  [f"authorization: Bearer {LITELLM_KEY}"], [proc.pid], workers,
                  {"version": version}, "LiteLLM")


FORWARDERS = {"aiohttp": ("forwarder", "bare forwarder (uvicorn + aiohttp)"),
              "wire": ("forwarder-wire", "bare forwarder (uvicorn + Harbourgate's client)")}


def start_forwarder(fleet: Fleet, upstreams: list[str], *, workers: int = 1,
                    cpus: set[int] | None = None, client: str = "aiohttp") -> Target:
    """bench/forwarder.py (bare uvicorn and an HTTP client, nothing else): the floor a
    Python proxy costs, against which Harbourgate's own work is measured. With `client`
    "wire" it is Harbourgate's transport alone (the code under test's, `HG_ENV`)."""
    name, label = FORWARDERS[client]
    port = free_port()
    proc = fleet.start(f"{name}-w{workers}", [
        sys.executable, str(BENCH / "forwarder.py"), "--port", str(port),
        "--workers", str(workers), "--client", client, *upstreams],
        f"http://127.0.0.1:{port}/v1/models", env=HG_ENV, cpus=cpus)
    return Target(name, [f"http://127.0.0.1:{port}/v1"], pids=[proc.pid], workers=workers,
                  label=label)


def header_dict(headers: list[str]) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (h.partition(":") for h in headers)}


# --------------------------------------------------------------------------- probes


def probe_pipeline(hg: Target, direct: Target) -> dict[str, Any]:
    """Evidence of which pipeline stages ran: refusals, headers, what left, what came back;
    then the same for every variant (`probe_variant`)."""
    url, headers = hg.urls()[0], header_dict(hg.headers)
    body = VARIANT["plain"].body
    checks: dict[str, Any] = {}
    no_key = httpx.post(url, json=body, timeout=10)
    checks["key"] = _refused(no_key, 401, "invalid_api_key")
    forged = {**headers, "x-harbourgate-attestation":
              headers["x-harbourgate-attestation"][:-4] + "AAAA"}
    checks["attestation"] = _refused(httpx.post(url, json=body, headers=forged, timeout=10),
                                     401, "invalid_attestation")
    variants = {v.key: probe_variant(hg, direct, v) for v in VARIANTS}
    plain = variants["plain"]
    checks["policy"] = {"ok": bool(plain["policy"]),
                        "evidence": plain["policy"] or "no X-Harbourgate-Policy"}
    checks["privacy"] = {"ok": plain["pseudonymised"] != "nothing" and not plain["leaked"],
                         "evidence": f"pseudonymised {plain['pseudonymised']}; raw values "
                                     f"seen upstream: {plain['leaked'] or 'none'}"}
    checks["restore"] = {"ok": plain["restored"], "evidence": plain["answer"]}
    checks["audit"] = {"ok": bool(plain["audit"]),
                       "evidence": plain["audit"] or "no X-Harbourgate-Audit"}
    return {"status": plain["status"], "checks": checks, "variants": variants,
            "prompt_bytes": _size(body)}


def probe_variant(target: Target, direct: Target, variant: Variant) -> dict[str, Any]:
    """One request of `variant`: what the upstream received and what the caller got back.

    With personal data: pseudonymised, no raw value upstream, the original values restored
    in the answer. Without: nothing pseudonymised and the prompt upstream unchanged."""
    recorded = direct.info["base"].removesuffix("/v1") + "/_standin/requests"
    httpx.delete(recorded, timeout=10)
    r = httpx.post(target.urls(variant.path)[0], json=variant.body,
                   headers=header_dict(target.headers), timeout=60)
    sent = json.dumps(httpx.get(recorded, timeout=10).json(), ensure_ascii=False)
    answer = answer_text(variant, r.text) if r.status_code == 200 else r.text[:300]
    hdr = {k: v for k, v in r.headers.items() if k.startswith("x-harbourgate-")}
    pseudonymised = hdr.get("x-harbourgate-pseudonymised") or "nothing"
    leaked = [v for v in RAW_VALUES if v in sent]
    question = variant.body["messages"][-1]["content"] if "messages" in variant.body else (
        variant.body["input"])
    restored = PHONE in answer if variant.personal_data else question in answer
    out = {"variant": variant.key, "status": r.status_code, "pseudonymised": pseudonymised,
           "leaked": leaked, "restored": restored, "unchanged_upstream": question in sent,
           "policy": hdr.get("x-harbourgate-policy"), "audit": hdr.get("x-harbourgate-audit"),
           "answer": answer[:160]}
    if not target.info.get("metrics"):  # not a gateway: it only has to proxy
        out["ok"] = r.status_code == 200 and restored
    elif variant.personal_data:
        out["ok"] = (r.status_code == 200 and pseudonymised != "nothing" and not leaked
                     and restored and bool(out["audit"]))
    else:
        out["ok"] = (r.status_code == 200 and pseudonymised == "nothing"
                     and out["unchanged_upstream"] and restored and bool(out["audit"]))
    return out


def answer_text(variant: Variant, text: str) -> str:
    """The answer's text: the message, or the stream's deltas joined."""
    if not variant.stream:
        return str(json.loads(text)["choices"][0]["message"]["content"])
    parts = []
    for line in text.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        try:
            event = json.loads(line[6:])
        except ValueError:
            continue
        if event.get("type") == "response.output_text.delta":
            parts.append(event.get("delta") or "")
        for choice in event.get("choices") or []:
            parts.append((choice.get("delta") or {}).get("content") or "")
    return "".join(parts)


def _refused(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    try:
        got = r.json().get("error", {}).get("code")
    except ValueError:
        got = None
    return {"ok": r.status_code == status and got == code,
            "evidence": f"{r.status_code} {got}"}


def probe_target(target: Target, direct: Target, report: dict[str, Any]) -> dict[str, Any]:
    """Every variant once through `target` (LiteLLM, the baseline); a variant it cannot
    serve is left out of its measurements, and the reason noted."""
    out = {}
    for v in VARIANTS:
        try:
            out[v.key] = probe_variant(target, direct, v)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            out[v.key] = {"ok": False, "status": None, "answer": f"{type(exc).__name__}: {exc}"}
        if not out[v.key]["ok"]:
            target.skip.add(v.key)
            why = str(out[v.key]["answer"]).replace("\n", " ")[:200]
            report["notes"].append(f"{target.label} is not measured on {v.title}: the probe "
                                   f"got {out[v.key]['status']}: {why}")
    return out


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
    round_rps: list[float] = field(default_factory=list)  # each round alone: the noise
    commit_wait: list[float] | None = None  # [sum s, count] of the histogram, if exported

    def add(self, out: dict[str, Any], cpu: float, upstream_cpu: float,
            commit_wait: tuple[float, float] | None) -> None:
        self.latencies += out["latencies_s"]
        self.first_bytes += out["first_bytes_s"]
        self.seconds += out["seconds"]
        for k, v in out["errors"].items():
            self.errors[k] = self.errors.get(k, 0) + v
        self.cpu_s += cpu
        self.upstream_cpu_s += upstream_cpu
        self.loadgen_cpu_s += out["loadgen_cpu_s"]
        self.timed_out |= out["timed_out"]
        self.round_rps.append(out["rps"])
        if commit_wait is not None:
            self.commit_wait = self.commit_wait or [0.0, 0.0]
            self.commit_wait[0] += commit_wait[0]
            self.commit_wait[1] += commit_wait[1]

    def result(self, target: Target) -> dict[str, Any]:
        n = len(self.latencies)
        lat, fb = sorted(self.latencies), sorted(self.first_bytes)
        out = {"requests": n, "errors": self.errors, "seconds": self.seconds,
               "rps": n / self.seconds if self.seconds else 0.0,
               "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "p999_ms": pct(lat, 0.999),
               "cpu_ms_per_req": self.cpu_s * 1000 / n if n else math.nan,
               "cpu_busy_per_worker": (self.cpu_s / self.seconds / target.workers
                                       if self.seconds else math.nan),
               "upstream_cpu_ms_per_req": self.upstream_cpu_s * 1000 / n if n else math.nan,
               "loadgen_cpu_s": self.loadgen_cpu_s, "timed_out": self.timed_out,
               "round_rps": self.round_rps, "workers": target.workers,
               "processes": peak_memory(target.pids)}
        if fb:
            out |= {"ttfb_p50_ms": pct(fb, 0.5), "ttfb_p99_ms": pct(fb, 0.99)}
        if target.metrics_urls():
            waited, count = self.commit_wait or (math.nan, 0)
            out |= {"audit_commit_wait_exported": self.commit_wait is not None,
                    "audit_commits": count,
                    "audit_commit_wait_ms": waited * 1000 / count if count else math.nan}
        return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))] * 1000


def commit_wait(target: Target) -> tuple[float, float] | None:
    """The audit-commit wait histogram's sum (s) and count over `target`'s servers, from
    /metrics; None where it is not exported (or /metrics cannot be read)."""
    pattern = re.compile(rf"^{COMMIT_WAIT}_(sum|count)(?:{{[^}}]*}})?\s+(\S+)", re.M)
    found, total = False, [0.0, 0.0]
    for url in target.metrics_urls():
        try:
            text = httpx.get(url, timeout=10).text
        except httpx.HTTPError:
            return None
        for kind, value in pattern.findall(text):
            found = True
            total[kind == "count"] += float(value)
    return (total[0], total[1]) if found else None


def loadgen_argv(target: Target, variant: Variant, body: Path, *, concurrency: int,
                 requests: int, max_seconds: float, warmup: int) -> list[str]:
    """The command line of bench/loadgen.py driving `variant` through `target` (--raw)."""
    argv = [sys.executable, str(BENCH / "loadgen.py"), *target.urls(variant.path),
            "--concurrency", str(concurrency), "--requests", str(requests), "--body-file",
            str(body), "--max-seconds", f"{max_seconds:.1f}", "--raw", "--warmup", str(warmup)]
    for h in target.headers:
        argv += ["--header", h]
    if variant.stream:
        argv.append("--stream")
    return argv


def loadgen(target: Target, variant: Variant, body: Path, *, concurrency: int, requests: int,
            max_seconds: float) -> dict[str, Any]:
    """One run of bench/loadgen.py in its own process."""
    argv = loadgen_argv(target, variant, body, concurrency=concurrency, requests=requests,
                        max_seconds=max_seconds,
                        warmup=min(max(concurrency, 20), requests))
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

    def levels_of(self, variant: Variant) -> list[int]:
        """Every level for (a) and (c); 1 and 64 (or the extremes asked for) for the rest."""
        if variant.every_level:
            return self.levels
        return [c for c in self.levels if c in (1, 64)] or sorted(
            {min(self.levels), max(self.levels)})

    def count(self, target: Target, variant: Variant, concurrency: int,
              scaling: bool = False) -> int:
        kind = "litellm" if target.name == "litellm" else "fast"
        n = (self.scaling_requests if scaling else self.requests)[kind]
        if variant.stream:
            n = n * 2 // 3
        if concurrency == 1:
            n //= 2
        return max(n, concurrency * 2, 20)


def measure(targets: list[Target], upstream: Target, variant: Variant, bodies: dict[str, Path],
            plan: Plan, *, concurrency: int, rounds: int, scaling: bool = False
            ) -> dict[str, dict[str, Any]]:
    """Every target that serves `variant` at one level, in `rounds` interleaved slices;
    every other round in reverse order, so no target always follows the same one."""
    targets = [t for t in targets if variant.key not in t.skip]
    tallies = {t.name: Tally() for t in targets}
    for i in range(rounds):
        for t in targets if i % 2 == 0 else targets[::-1]:
            if plan.clock.left() < 5:
                raise TimeoutError("time cap reached")
            n = max(plan.count(t, variant, concurrency, scaling) // rounds, 1)
            wait0 = commit_wait(t)
            cpu0, up0 = cpu_seconds(t.pids), cpu_seconds(upstream.pids)
            out = loadgen(t, variant, bodies[variant.key], concurrency=concurrency,
                          requests=n, max_seconds=min(120.0, plan.clock.left() - 2))
            cpu, up = cpu_seconds(t.pids) - cpu0, cpu_seconds(upstream.pids) - up0
            wait1 = commit_wait(t)
            waited = (wait1[0] - wait0[0], wait1[1] - wait0[1]) if wait0 and wait1 else None
            tallies[t.name].add(out, cpu, up, waited)
    return {t.name: tallies[t.name].result(t) for t in targets}


def say(line: str) -> None:
    print(line, flush=True)


def describe(mode: str, c: int, results: dict[str, dict[str, Any]]) -> None:
    for name, r in results.items():
        errs = sum(r["errors"].values())
        say(f"  {mode:9} c={c:<3} {name:22} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:8.3f} ms  "
            f"p99 {r['p99_ms']:8.3f} ms  p99.9 {r['p999_ms']:8.3f} ms  errors {errs}  "
            f"CPU {r['cpu_ms_per_req']:.3f} ms/req")


# --------------------------------------------------------------------------- the report


def markdown(report: dict[str, Any]) -> str:
    """The docs section: conditions, pipeline evidence, targets, before/after, one table
    per variant, scaling, sizing guide."""
    env = report["environment"]
    parts = [
        "## Side by side: Harbourgate, LiteLLM proxy and the direct call",
        "",
        f"Measured with `{env.get('command', 'bench/run')}` (`bench/run --quick` is a smoke "
        "run of a few minutes that writes nothing). It starts the stand-in upstream, "
        "Harbourgate, LiteLLM proxy and two bare forwarders (below) on this machine and "
        "drives each with `bench/loadgen.py`, a separate asyncio process, in interleaved "
        "rounds, so the direct call and every proxy share the same background. *Added* is a "
        "proxy's percentile minus the direct call's at the same concurrency. CPU is user + system "
        "time of the server's whole process tree per request; memory is the peak resident "
        "set (VmHWM) of its largest process. Raw figures: `bench/results/compare-*.json`.",
        "",
        f"Measured {env['date']} on {env['cpu']}, {env['cores']} cores (shared by the "
        f"stand-in, the proxy under test and the load generator), Python {env['python']}; "
        f"Harbourgate `{env.get('harbourgate_code', env['harbourgate_commit'])}`"
        + (f" (baseline `{env['baseline']}`)" if env.get("baseline") else "")
        + f", LiteLLM {env.get('litellm', '?')}; "
        f"{env['workers']} worker process{'es' if env['workers'] > 1 else ''} each; load "
        f"average {env['load_average_at_start']:.2f} at the start"
        + (f", {env['load_average_at_end']:.2f} at the end" if "load_average_at_end" in env
           else "") + ".",
        "",
        *pipeline_section(report),
        *targets_section(report),
        *baseline_section(report),
    ]
    for variant in VARIANTS:
        rows = [v for v in report["levels"].values() if v.get("variant") == variant.key]
        if rows:
            parts += level_table(report, rows, variant)
    parts += scaling_section(report)
    for note in report["notes"]:
        parts += ["", f"> {note}"]
    parts += ["", "![Throughput and latency by concurrency, the variants, and scaling]"
                  "(img/benchmarks.png)"]
    return "\n".join(parts)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


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
        lines.append(f"| {stage} | {'yes' if check['ok'] else '**no**'} | "
                     f"{_cell(check['evidence'])} |")
    lines += ["", "**Request variants.** (b) is (a) with the escalation paragraph rewritten "
              "without names, numbers or addresses and padded to the same size, so it differs "
              "only in what the scan finds: the pipeline still checks the key and the "
              "attestation, decides policy, scans and audits. (d) sends (a) as Responses API "
              f"`instructions` + `input` to a second route, `{RESPONSES_MODEL}`, whose "
              "upstream speaks the Responses API (`api: responses`), so Harbourgate passes it "
              "through as LiteLLM does. One probe request of each, through Harbourgate:",
              "", "| variant | status | pseudonymised | raw values upstream | answer | "
              "audit | verdict |", "|---|---|---|---|---|---|---|"]
    for key, probe in pipe.get("variants", {}).items():
        variant = VARIANT[key]
        answer = ("original values restored" if probe["restored"] else "**not restored**") \
            if variant.personal_data else (
            ("prompt sent unchanged" if probe["unchanged_upstream"] else "**prompt changed**")
            + (", answer as sent back" if probe["restored"] else ", **answer changed**"))
        lines.append(f"| {variant.title} | {probe['status']} | {_cell(probe['pseudonymised'])} "
                     f"| {_cell(', '.join(probe['leaked']) or 'none')} | {answer} | "
                     f"{'recorded' if probe['audit'] else '**none**'} | "
                     f"{'as expected' if probe['ok'] else '**unexpected**'} |")
    ll = report.get("litellm_probe", {})
    proxied = [VARIANT[k].letter for k, p in ll.items() if p.get("ok")]
    lines += ["", f"LiteLLM answered the stand-in's echo for {', '.join(proxied) or 'none'} of "
                  "the variants: it really proxies." if proxied else
              "LiteLLM did not proxy any variant (see the notes).", ""]
    return lines


def _result(report: dict[str, Any], key: str, name: str) -> dict[str, Any] | None:
    level = report["levels"].get(key)
    return level["results"].get(name) if level else None


def _ratio_row(report: dict[str, Any], variant: str, target: float, aim: float | None,
               what: str) -> str | None:
    g, ll = (_result(report, f"{variant}/64", n) for n in ("harbourgate", "litellm"))
    if not (g and ll and ll["rps"]):
        return None
    ratio = g["rps"] / ll["rps"]
    verdict = "met" if ratio >= target else f"not met: {ratio / target:.0%} of the target"
    if aim and ratio >= target:
        verdict += f" (aim {aim:.0f}×: {'reached' if ratio >= aim else 'not yet'})"
    return (f"| {what}, {VARIANT[variant].letter}, concurrency 64 | ≥ {target:.0f}× | "
            f"{g['rps']:,.0f} vs {ll['rps']:,.0f} req/s = {ratio:.1f}× | {verdict} |")


def targets_section(report: dict[str, Any]) -> list[str]:
    """PRODUCT.md §6 (and issue 17's scaling) targets: met, or the measured gap."""
    lines = ["**Targets (PRODUCT.md §6).**", "", "| figure | target | measured | verdict |",
             "|---|---|---|---|"]
    d, g = _result(report, "plain/1", "direct"), _result(report, "plain/1", "harbourgate")
    if d and g:
        for q, limit in (("p50", 0.5), ("p99", 1.0)):
            added = g[f"{q}_ms"] - d[f"{q}_ms"]
            verdict = "met" if added <= limit else f"not met: {added - limit:.3f} ms over"
            lines.append(f"| latency added, full pipeline (a), concurrency 1, {q} | "
                         f"≤ {limit} ms | {added:.3f} ms | {verdict} |")
        lines.append(f"| gateway CPU per request, (a), concurrency 1 | (bounds the added "
                     f"latency) | {g['cpu_ms_per_req']:.3f} ms | |")
    for key in ("stream", "responses"):
        d, g = (_result(report, f"{key}/1", n) for n in ("direct", "harbourgate"))
        if d and g and "ttfb_p50_ms" in g and "ttfb_p50_ms" in d:
            added = g["ttfb_p50_ms"] - d["ttfb_p50_ms"]
            verdict = "met" if added <= 0.5 else f"not met: {added - 0.5:.3f} ms over"
            lines.append(f"| streaming: time to first byte added, {VARIANT[key].letter}, "
                         f"concurrency 1, p50 | ≤ 0.5 ms | {added:.3f} ms | {verdict} |")
    for row in (_ratio_row(report, "plain", 30, 40, "throughput vs LiteLLM"),
                _ratio_row(report, "stream", 30, None, "streaming throughput vs LiteLLM"),
                _ratio_row(report, "responses", 30, None, "streaming throughput vs LiteLLM"),
                _ratio_row(report, "clean", 50, None,
                           "no personal data in the prompt, throughput vs LiteLLM")):
        if row:
            lines.append(row)
    cores = report["environment"]["cores"]
    for row in report["scaling"]:
        ratio = scaling_ratio(report, row)
        if row["name"] != "harbourgate" or row.get("workers", 1) < 2 or ratio is None \
                or row.get("replicas", 1) > 1:
            continue
        w, want = row["workers"], SCALING_TARGET * row["workers"]
        verdict = "met" if ratio >= want else f"not met: {ratio / want:.0%} of the target"
        if w >= cores:
            verdict += (f" ({w} workers on {cores} cores shared with the stand-in and the "
                        "load generator)")
        lines.append(f"| scaling, {row['storage']}, {w} workers vs 1 (issue 17) | "
                     f"≥ {want:.1f}× | {ratio:.2f}× | {verdict} |")
    for name, label in (("harbourgate", "Harbourgate"), ("litellm", "LiteLLM")):
        peaks = [p["peak_mib"] for lv in report["levels"].values()
                 for p in lv["results"].get(name, {}).get("processes", [])]
        if peaks:
            lines.append(f"| memory per worker, {label} | stated | {max(peaks):.0f} MiB peak "
                         f"RSS | |")
    return [*lines, "", *gap_analysis(report), "", *floor_section(report)]


def gap_analysis(report: dict[str, Any]) -> list[str]:
    """Why the figures are what they are: on a saturated machine, CPU per request rules."""
    g, ll = (_result(report, "plain/64", n) for n in ("harbourgate", "litellm"))
    one = _result(report, "plain/1", "harbourgate")
    if not (g and ll and one):
        return []
    ratio = ll["cpu_ms_per_req"] / g["cpu_ms_per_req"]
    text = (f"At concurrency 64 both proxies saturate their worker, so throughput is set by "
            f"CPU per request: for (a) LiteLLM spends {ll['cpu_ms_per_req']:.2f} ms, "
            f"Harbourgate {g['cpu_ms_per_req']:.3f} ms ({ratio:.1f}× less), which bounds the "
            f"throughput ratio; 30× needs about {ll['cpu_ms_per_req'] / 30:.3f} ms, 40× about "
            f"{ll['cpu_ms_per_req'] / 40:.3f} ms.")
    gc, lc = (_result(report, "clean/64", n) for n in ("harbourgate", "litellm"))
    if gc and lc:
        text += (f" Without personal data (b) Harbourgate spends {gc['cpu_ms_per_req']:.3f} ms "
                 f"against LiteLLM's {lc['cpu_ms_per_req']:.2f} ms; 50× needs about "
                 f"{lc['cpu_ms_per_req'] / 50:.3f} ms.")
    text += (f" At concurrency 1 the added latency follows the same cost: the pipeline's "
             f"{one['cpu_ms_per_req']:.3f} ms of CPU per request is spent on the request path "
             "(key, attestation, scan, policy, pseudonymise, audit commit, forward, restore).")
    return [text]


def _times(r: dict[str, Any], ll: dict[str, Any]) -> str:
    """`r` against LiteLLM: by throughput, and by CPU per request."""
    by_cpu = ll["cpu_ms_per_req"] / r["cpu_ms_per_req"] if r["cpu_ms_per_req"] else math.nan
    return f"{r['rps'] / ll['rps']:.1f}× ({by_cpu:.0f}× by CPU)"


def floor_section(report: dict[str, Any]) -> list[str]:
    """The bare forwarders beside Harbourgate and LiteLLM: how far a Python proxy that does
    nothing else gets on this machine (the floor), and what Harbourgate's governance costs
    above its own transport (uvicorn + its client: the `forwarder-wire` row)."""
    rows = []
    for key, target in (("plain", 30), ("clean", 50), ("stream", 30), ("responses", 30)):
        res = {n: _result(report, f"{key}/64", n)
               for n in ("litellm", "forwarder", "forwarder-wire", "harbourgate")}
        ll = res["litellm"]
        if not (ll and ll["rps"] and all(res.values())):
            continue
        wire, hg = res["forwarder-wire"], res["harbourgate"]
        rows.append(f"| {VARIANT[key].letter} | ≥ {target}× | {_times(res['forwarder'], ll)} | "
                    f"{_times(wire, ll)} | {_times(hg, ll)} | "
                    f"{wire['cpu_ms_per_req']:.3f} → {hg['cpu_ms_per_req']:.3f} ms "
                    f"({hg['cpu_ms_per_req'] - wire['cpu_ms_per_req']:+.3f}) |")
    latency = []
    for key, q, what in (("plain", "p50_ms", "latency added, (a), p50"),
                         ("plain", "p99_ms", "latency added, (a), p99"),
                         ("stream", "ttfb_p50_ms", "first byte added, (c), p50"),
                         ("responses", "ttfb_p50_ms", "first byte added, (d), p50")):
        res = {n: _result(report, f"{key}/1", n)
               for n in ("direct", "forwarder", "forwarder-wire", "harbourgate")}
        if not all(r and q in r for r in res.values()):
            continue
        added = {n: res[n][q] - res["direct"][q] for n in res}
        latency.append(f"| {what} | {added['forwarder']:.3f} ms | "
                       f"{added['forwarder-wire']:.3f} ms | {added['harbourgate']:.3f} ms |")
    if not rows and not latency:
        return []
    lines = ["**The floor.** Two bare forwarders (`bench/forwarder.py`: uvicorn on uvloop "
             "passing the request on with aiohttp, or with Harbourgate's own HTTP client; no "
             "key, policy, scan or audit), one worker each, measured in the same rounds, show "
             "how far a proxy in Python gets on this machine. The second is Harbourgate's "
             "transport alone, so what Harbourgate costs above it is the governance on the "
             "request path."]
    if rows:
        lines += ["", "| variant at concurrency 64 | target | forwarder (aiohttp) vs LiteLLM |"
                      " forwarder (Harbourgate's client) vs LiteLLM | Harbourgate vs LiteLLM |"
                      " CPU per request: transport → Harbourgate (governance) |",
                  "|---|---|---|---|---|---|", *rows]
    if latency:
        lines += ["", "| concurrency 1 (target ≤ 0.5 ms added) | forwarder (aiohttp) | "
                      "forwarder (Harbourgate's client) | Harbourgate |",
                  "|---|---|---|---|", *latency]
    return [*lines, ""]


def baseline_section(report: dict[str, Any]) -> list[str]:
    """Before and after a change: the baseline commit and the code under test, measured in
    the same rounds."""
    env = report["environment"]
    pairs = [(lv, lv["results"][BASELINE], lv["results"]["harbourgate"])
             for lv in report["levels"].values()
             if BASELINE in lv["results"] and "harbourgate" in lv["results"]]
    if not pairs:
        return []
    lines = ["", f"### Before and after: `{env['baseline']}` → `{env['harbourgate_code']}`", "",
             "Both builds served side by side and were driven in the same interleaved rounds, "
             "so the change is measured under one background. Negative latency and CPU "
             "changes are improvements. *Each round* is the req/s change in each round alone: "
             "a change within that spread is not told apart from noise. CPU per request is "
             "the steadier figure where other work shares the machine.", "",
             "| variant | concurrency | req/s before → after | change | each round "
             "| p50 ms before → after | p99 ms before → after | CPU ms/req before → after "
             "| change |", "|---|---|---|---|---|---|---|---|---|"]
    order = {v.key: i for i, v in enumerate(VARIANTS)}
    for lv, b, a in sorted(pairs, key=lambda p: (order[p[0]["variant"]], p[0]["concurrency"])):
        lines.append(
            f"| {VARIANT[lv['variant']].letter} | {lv['concurrency']} | "
            f"{b['rps']:,.0f} → {a['rps']:,.0f} | {_change(b['rps'], a['rps'])} | "
            f"{_spread(b.get('round_rps', []), a.get('round_rps', []))} | "
            f"{b['p50_ms']:.3f} → {a['p50_ms']:.3f} | {b['p99_ms']:.3f} → {a['p99_ms']:.3f} | "
            f"{b['cpu_ms_per_req']:.3f} → {a['cpu_ms_per_req']:.3f} | "
            f"{_change(b['cpu_ms_per_req'], a['cpu_ms_per_req'])} |")
    return lines


def _change(before: float, after: float) -> str:
    return f"{after / before - 1:+.1%}" if before and not math.isnan(before) else "–"


def _spread(before: list[float], after: list[float]) -> str:
    """The lowest and highest change over the rounds (one round: nothing to compare)."""
    changes = sorted(a / b - 1 for b, a in zip(before, after, strict=False) if b)
    if len(changes) < 2:
        return "–"
    return f"{changes[0]:+.0%} to {changes[-1]:+.0%}"


def _label(report: dict[str, Any], name: str) -> str:
    label = report.get("labels", {}).get(name, name)
    return f"**{label}**" if name == "harbourgate" else label


def level_table(report: dict[str, Any], rows: list[dict[str, Any]],
                variant: Variant) -> list[str]:
    head = ("| concurrency | target | req/s | p50 ms | p99 ms | p99.9 ms | added p50 ms "
            "| added p99 ms | errors | CPU ms/req | peak MiB |")
    if variant.stream:
        head += " first byte p50 ms | added first byte p50 ms |"
    lines = ["", f"### {variant.title[:4]}{variant.title[4].upper()}{variant.title[5:]}", "",
             head, "|" + "---|" * (head.count("|") - 1)]
    for row in sorted(rows, key=lambda r: r["concurrency"]):
        res = row["results"]
        base = res.get("direct")
        for name, r in res.items():
            added = (f"{r['p50_ms'] - base['p50_ms']:.3f} | {r['p99_ms'] - base['p99_ms']:.3f}"
                     if base and name != "direct" else "– | –")
            peak = max((p["peak_mib"] for p in r["processes"]), default=math.nan)
            errs = sum(r["errors"].values())
            line = (f"| {row['concurrency']} | {_label(report, name)} | {r['rps']:,.0f} | "
                    f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['p999_ms']:.3f} | {added} | "
                    f"{errs}{' (time cap)' if r['timed_out'] else ''} | "
                    f"{r['cpu_ms_per_req']:.3f} | {peak:.0f} |")
            if variant.stream:
                fb = r.get("ttfb_p50_ms", math.nan)
                fb_added = (f"{fb - base.get('ttfb_p50_ms', math.nan):.3f}"
                            if base and name != "direct" else "–")
                line += f" {fb:.3f} | {fb_added} |"
            lines.append(line)
    return lines


def scaling_ratio(report: dict[str, Any], row: dict[str, Any]) -> float | None:
    """req/s against one worker of the same kind (same storage; LiteLLM's from the main
    comparison at the same concurrency when it ran one worker)."""
    if row.get("group") is None:
        return None
    ref = next((r["result"] for r in report["scaling"] if r.get("group") == row["group"]
                and r["workers"] == 1), None)
    if ref is None and row["group"] == "LiteLLM" and report["environment"]["workers"] == 1:
        ref = _result(report, f"plain/{row['concurrency']}", "litellm")
    if not ref or not ref["rps"]:
        return None
    return float(row["result"]["rps"] / ref["rps"])


def scaling_section(report: dict[str, Any]) -> list[str]:
    rows = report["scaling"]
    if not rows:
        return []
    c = rows[0]["concurrency"]
    exported = any(r["result"].get("audit_commit_wait_exported") for r in rows)
    lines = ["", f"### Scaling ((a) full pipeline, plain, concurrency {c})", "",
             "*vs 1* is req/s against one worker of the same kind, *efficiency* that ratio "
             "over the worker count (issue 17: ≥ 0.8); *CPU busy per worker* is the server's CPU "
             "(every process: workers, supervisor, audit sequencer) while the load ran, over the "
             "worker count, as a share of one core. *Audit commit wait* is the mean time a request "
             f"waited for its audit commit, from `{COMMIT_WAIT}` on /metrics (sum over count, "
             "the change during the load)"
             + ("." if exported else ": **not exported** by this build."), "",
             "| deployment | worker processes | req/s | vs 1 | efficiency | p50 ms | p99 ms | "
             "errors | CPU ms/req | CPU busy per worker | audit commit wait ms | "
             "peak MiB per worker |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        r = row["result"]
        per_worker = max((p["peak_mib"] for p in r["processes"]), default=math.nan)
        ratio = scaling_ratio(report, row)
        vs = (f"{ratio:.2f}× | {ratio / row['workers']:.0%}" if ratio is not None
              else "– | –")
        if "audit_commit_wait_exported" not in r:
            wait = "–"
        elif r["audit_commit_wait_exported"]:
            wait = f"{r['audit_commit_wait_ms']:.3f}"
        else:
            wait = "not exported"
        lines.append(f"| {row['label']} | {row['workers']} | {r['rps']:,.0f} | {vs} | "
                     f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {sum(r['errors'].values())} | "
                     f"{r['cpu_ms_per_req']:.3f} | {r['cpu_busy_per_worker']:.0%} | {wait} | "
                     f"{per_worker:.0f} |")
    return lines + sizing_guide(report)


def saturated(report: dict[str, Any], variant: Variant, name: str) -> tuple[int, dict] | None:
    """`name`'s result for `variant` at 64, else at the highest concurrency measured."""
    levels = sorted((lv["concurrency"], lv["results"][name]) for lv in report["levels"].values()
                    if lv.get("variant") == variant.key and name in lv["results"])
    return next(((c, r) for c, r in levels if c == 64), levels[-1] if levels else None)


def sizing_guide(report: dict[str, Any]) -> list[str]:
    """Requests per second per core for each variant, and the cores a rate needs."""
    per_core: dict[str, float] = {}
    lines = ["", "### Sizing guide", "",
             "Requests per second one fully busy core serves, from the CPU per request that "
             "each variant cost one saturated Harbourgate worker above (LiteLLM alongside, "
             "for scale):", "",
             "| variant | concurrency | Harbourgate CPU ms/req | Harbourgate req/s per core | "
             "LiteLLM CPU ms/req | LiteLLM req/s per core |", "|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        hit = saturated(report, variant, "harbourgate")
        if not hit or not hit[1]["cpu_ms_per_req"] > 0:
            continue
        c, r = hit
        per_core[variant.key] = 1000 / r["cpu_ms_per_req"]
        ll = _result(report, f"{variant.key}/{c}", "litellm")
        ll_cells = (f"{ll['cpu_ms_per_req']:.2f} | {1000 / ll['cpu_ms_per_req']:,.0f}"
                    if ll and ll["cpu_ms_per_req"] > 0 else "– | –")
        lines.append(f"| {variant.title} | {c} | {r['cpu_ms_per_req']:.3f} | "
                     f"{per_core[variant.key]:,.0f} | {ll_cells} |")
    if not per_core:
        return []
    mems = [p["peak_mib"] for lv in report["levels"].values()
            for p in lv["results"].get("harbourgate", {}).get("processes", [])]
    mem = max(mems, default=math.nan)
    keys = list(per_core)
    lines += ["", f"Cores (= workers) for a sustained rate at no more than 70 % utilisation, "
                  f"so bursts have headroom; a worker holds about {mem:.0f} MiB at peak:", "",
              "| sustained requests/s | " + " | ".join(VARIANT[k].letter for k in keys) + " |",
              "|---|" + "---|" * len(keys)]
    for rate in (500, 2000, 5000, 20000):
        cells = [str(max(1, math.ceil(rate / (per_core[k] * 0.7)))) for k in keys]
        lines.append(f"| {rate:,} | " + " | ".join(cells) + " |")
    hg = [r for r in report["scaling"] if r["name"] == "harbourgate"]
    single = next((r for r in hg if r.get("storage") == "SQLite" and r["workers"] == 1), None)
    pg = next((r for r in hg if r.get("storage") != "SQLite" and r["workers"] == 1), None)
    lines += ["", "- **Workers on one host** share one SQLite file; the scaling table shows "
              "how far extra workers help on this machine. Beyond the host's cores they only "
              "add contention: size workers to cores, not to concurrency.",
              "- **Replicas** (PostgreSQL + Redis) are for more than one host or for "
              "availability: every replica is the same stateless process, put them behind any "
              "load balancer."]
    if single and pg:
        cpu, pcpu = single["result"]["cpu_ms_per_req"], pg["result"]["cpu_ms_per_req"]
        lines.append(f"  On PostgreSQL a request costs {pcpu:.3f} ms of CPU in the gateway "
                     f"({pcpu / cpu - 1:+.0%} against SQLite), and the database's own CPU is "
                     "on top; on a small machine the replicas compete with the database, "
                     "Redis, the stand-in and the load generator, so their figure here is a "
                     "floor.")
    lines.append("- **Streams** cost more CPU per request than plain calls: size on (c) or "
                 "(d) if most traffic streams, on (b) for traffic without personal data.")
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
    """A throw-away PostgreSQL database for one deployment; dropped afterwards."""
    import psycopg

    name = "hgbench_" + secrets.token_hex(4)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:  # the same server, another path: a socket directory in the query stays
        yield urllib.parse.urlsplit(admin_url)._replace(path="/" + name).geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = make_plan(args)
    work = Path(tempfile.mkdtemp(prefix="hg-compare-"))
    bodies = {v.key: work / f"body-{v.key}.json" for v in VARIANTS}
    for v in VARIANTS:
        bodies[v.key].write_text(json.dumps(v.body, ensure_ascii=False))
    report: dict[str, Any] = {"environment": environment(args), "levels": {}, "scaling": [],
                              "notes": [], "variants": {v.key: v.title for v in VARIANTS}}
    env = report["environment"]
    env["harbourgate_code"] = snapshot_source(work / "code", args.ref)
    base_env: dict[str, str | None] = {}
    if args.baseline:
        env["baseline"] = snapshot_source(work / "baseline", args.baseline, base_env)
    fleet = Fleet(work)
    try:
        direct = start_standin(fleet)
        upstream = direct.info["base"]
        say(f"stand-in on {upstream}; starting Harbourgate"
            f"{' and its baseline ' + env['baseline'] if args.baseline else ''} and LiteLLM "
            f"({args.workers} worker{'s' if args.workers > 1 else ''} each)")
        hg = start_harbourgate(fleet, work / "hg", upstream, workers=args.workers)
        targets = [direct, hg]
        if args.baseline:
            try:
                targets.append(start_harbourgate(
                    fleet, work / "hg-base", upstream, workers=args.workers, name=BASELINE,
                    env=base_env, label=f"Harbourgate {env['baseline']}"))
            except (RuntimeError, httpx.HTTPError) as exc:
                report["notes"].append(f"baseline {env['baseline']} not measured: "
                                       f"{str(exc).splitlines()[0]}")
                say(f"baseline not measured: {exc}")
        targets += [start_forwarder(fleet, [upstream], workers=args.workers, client=c)
                    for c in FORWARDERS]
        ll = start_litellm(fleet, upstream, workers=args.workers)
        targets.append(ll)
        env["litellm"] = ll.info["version"]
        report["labels"] = {t.name: t.label for t in targets}
        report["pipeline"] = probe_pipeline(hg, direct)
        for stage, check in report["pipeline"]["checks"].items():
            say(f"  pipeline {stage:12} {'active' if check['ok'] else 'NOT OBSERVED':13} "
                f"{check['evidence']}")
        for key, probe in report["pipeline"]["variants"].items():
            say(f"  variant  {key:12} {'as expected' if probe['ok'] else 'UNEXPECTED':13} "
                f"{probe['status']} pseudonymised {probe['pseudonymised']}, raw values "
                f"upstream: {probe['leaked'] or 'none'}")
            if not probe["ok"]:
                report["notes"].append(f"the probe of {VARIANT[key].title} through "
                                       f"Harbourgate was not as expected: {probe}")
        for t in targets[2:]:
            probes = probe_target(t, direct, report)
            if t is ll:
                report["litellm_probe"] = probes
            say(f"  {t.label} serves: "
                f"{', '.join(k for k, p in probes.items() if p['ok']) or 'nothing'}")
        try:
            for variant in VARIANTS:
                for c in plan.levels_of(variant):
                    res = measure(targets, direct, variant, bodies, plan, concurrency=c,
                                  rounds=plan.rounds)
                    report["levels"][f"{variant.key}/{c}"] = {
                        "variant": variant.key, "stream": variant.stream, "concurrency": c,
                        "results": res}
                    describe(variant.key, c, res)
            for t in targets[1:]:
                fleet.stop_target(t)
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
    env["load_average_at_end"] = os.getloadavg()[0]
    if args.keep:
        say(f"kept the work directory with every server's log: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return report


def scaling(report: dict[str, Any], fleet: Fleet, work: Path, direct: Target,
            bodies: dict[str, Path], plan: Plan, args: argparse.Namespace) -> None:
    """Variant (a) at the scaling concurrency, by worker count and deployment shape.

    Each deployment is measured on its own; one that fails to start is noted and skipped,
    so the figures already taken are kept. `group` names the rows one worker is compared
    with (the ratio and efficiency columns).
    """
    c = args.scaling_concurrency
    upstream = direct.info["base"]

    def one(label: str, start: Callable[[], Target], group: str | None = None) -> None:
        target = None
        try:
            target = start()
            res = measure([target], direct, VARIANT["plain"], bodies, plan, concurrency=c,
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
                                  **target.info, "workers": target.workers, "group": group,
                                  "result": res})
        describe("plain", c, {label: res})

    def workers(w: int) -> str:
        return f"{w} worker{'s' if w > 1 else ''}"

    one("direct (stand-in)", lambda: direct)
    for w in plan.scaling_workers:
        one(f"Harbourgate, SQLite, {workers(w)}",
            lambda w=w: start_harbourgate(fleet, work / f"hg-w{w}", upstream, workers=w),
            "SQLite")
    if args.postgres and args.redis:
        pg = "PostgreSQL + Redis"
        shapes = [(1, w) for w in plan.scaling_workers] + [(2, 1)]
        for replicas, w in shapes:
            with contextlib.ExitStack() as stack:
                def start_pg(replicas: int = replicas, w: int = w,
                             stack: contextlib.ExitStack = stack) -> Target:
                    db = stack.enter_context(postgres_database(args.postgres))
                    return start_harbourgate(fleet, work / f"hg-pg{replicas}x{w}", upstream,
                                             workers=w, replicas=replicas, database_url=db,
                                             redis_url=args.redis)
                label = (f"Harbourgate, {pg}, {workers(w)}" if replicas == 1 else
                         f"Harbourgate, {pg}, {replicas} replicas x {workers(w)}")
                one(label, start_pg, pg)
    else:
        report["notes"].append("PostgreSQL scaling not measured: no --postgres/--redis")
    servers = [start_standin(fleet, f"stand-in-pool-{i}") for i in range(POOL_SIZE - 1)]
    one(f"Harbourgate, SQLite, 1 worker, the route a pool of {POOL_SIZE} stand-ins",
        lambda: start_harbourgate(fleet, work / "hg-pool", upstream, workers=1,
                                  pool=[upstream, *(s.info["base"] for s in servers)]))
    for server in servers:
        fleet.stop_target(server)
    for w in plan.scaling_workers:
        if w != args.workers:  # the main comparison measured that one
            one(f"LiteLLM, {workers(w)}", lambda w=w: start_litellm(fleet, upstream, workers=w),
                "LiteLLM")
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


def scaling_workers(max_workers: int) -> list[int]:
    """1, 2, 4, 8 workers up to `max_workers`; always 1 and 2."""
    return [w for w in (1, 2, 4, 8) if w <= max(2, max_workers)]


def make_plan(args: argparse.Namespace) -> Plan:
    clock = Clock(args.max_minutes)
    if args.quick:
        return Plan(args.levels or [1, 64], {"fast": 600, "litellm": 120}, args.rounds or 1,
                    {"fast": 600, "litellm": 120}, scaling_workers(min(args.max_workers, 2)),
                    clock)
    fast = args.requests or 3000
    return Plan(args.levels or [1, 16, 64, 256], {"fast": fast, "litellm": 900},
                args.rounds or 3, {"fast": fast, "litellm": 600},
                scaling_workers(args.max_workers), clock)


def cpu_model() -> str:
    return next((line.split(":", 1)[1].strip() for line in
                 Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")), platform.machine())


def environment(args: argparse.Namespace) -> dict[str, Any]:
    harbourgate_rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True, check=False).stdout.strip()
    return {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_model(), "cores": os.cpu_count(),
            "python": platform.python_version(), "harbourgate_commit": harbourgate_rev,
            "workers": args.workers, "quick": args.quick,
            "command": shlex.join(["bench/run", *sys.argv[1:]]),
            "load_average_at_start": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a short smoke run (c=1 and 64, few requests); writes no docs")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes of each proxy in the main comparison")
    parser.add_argument("--levels", type=lambda s: [int(c) for c in s.split(",")],
                        help="concurrency levels of (a) and (c) [1,16,64,256]; (b) and (d) "
                             "run at 1 and 64 of them")
    parser.add_argument("--requests", type=int,
                        help="requests per level for the direct call, Harbourgate and the "
                             "forwarders, over all rounds [3000]: more on a fast machine, "
                             "where 3000 last a second or two a round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per level [3]")
    parser.add_argument("--baseline", metavar="REF",
                        help="also measure Harbourgate built from this commit, in the same "
                             "rounds, and write a before/after table")
    parser.add_argument("--max-workers", type=int, default=os.cpu_count() or 1,
                        help="largest worker count of the scaling rows (1, 2, 4, 8; always 1 "
                             "and 2) [the number of CPUs]")
    parser.add_argument("--scaling-concurrency", type=int, default=64)
    parser.add_argument("--postgres", default=os.environ.get(
        "HARBOURGATE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="an admin URL; each PostgreSQL row creates and drops its own database ('' skips)")
    parser.add_argument("--redis", default=os.environ.get(
        "HARBOURGATE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--max-minutes", type=float, default=20.0, help="global time cap")
    parser.add_argument("--no-write", action="store_true", help="print only; touch no docs")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--ref", help="measure this commit (default: the working tree, "
                                      "copied at the start of the run)")
    args = parser.parse_args()
    if min(args.workers, args.max_workers, args.requests or 1, args.rounds or 1,
           *(args.levels or [])) < 1:
        parser.error("--workers, --max-workers, --requests, --rounds and every concurrency "
                     "level must be at least 1")
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
