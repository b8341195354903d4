"""`harbourgate demo`: the directive shock of 12 June 2026, replayed end to end on this machine.

Nothing is simulated inside one process. The demo starts a real `harbourgate stand-in`
(every upstream model) and a real `harbourgate serve` on free 127.0.0.1 ports, with a
generated configuration: four routes (`fable-5` and `mythos-5` from the US, `glm-5.2` from
the mainland, `qwen-local` on a Hong Kong cluster), a trusted identity verifier whose Ed25519
key is made at start, and a sandbox of three participants. Participants' applications then
call the gateway with the official `openai` and `anthropic` SDKs, on behalf of end users
with and without signed attestations, in three phases:

1. before: everyone is served the model they asked for;
2. the June 2026 directive is issued through the admin API (`POST /admin/v1/directives`)
   while traffic flows: US nationals keep `fable-5` and `mythos-5`, everyone else is
   rerouted to a permitted model of their application's choice, and an application that
   chose only the two governed models is refused with a cited `451 legal_restriction`;
3. the directive is revoked (`DELETE`): everyone is back on the model they asked for.

Every answer is checked against what the directive says should happen, propagation is
measured twice (first changed answer; first `X-Harbourgate-Policy` header naming the
directive), and at the end the signed checkpoint is fetched and `harbourgate audit verify`
checks the whole log against it. `run_demo` returns a `DemoResult` whose `exit_code` is 0
only when the story held.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import inspect
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import anthropic
import httpx
import openai
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from harbourgate.directives.model import Directive, load_directive_file
from harbourgate.policy.bundle import PACKS_DIR

__all__ = [
    "CALLERS", "DIRECTIVE_FILE", "Caller", "DemoError", "DemoResult", "EndUser", "Outcome",
    "run_demo",
]

DIRECTIVE_FILE = PACKS_DIR / "export-directives" / "directives" / "us-doc-2026-06-12.yaml"
ISSUER = "https://id.demo.harbourgate.local"
HARBOURGATE = (sys.executable, "-m", "harbourgate")
START_TIMEOUT_S = 30.0
PROPAGATION_TIMEOUT_S = 5.0
PACE_S = 0.1  # pause between one caller's requests: ~10 requests/s per caller
MAX_REQUESTS = 20_000  # a hard bound on the whole run's traffic, whatever the phase length

Sdk = Literal["openai", "anthropic"]


class DemoError(Exception):
    """Something the demo cannot go on without: a process that did not start, an admin
    call that failed. The message says what, with the log tail when there is one."""


# -- the cast ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EndUser:
    """An end user; `nationality` is what their attestation states (None: no attestation)."""

    kind: str
    nationality: tuple[str, ...] | None
    residence: str = "HK"

    def inside(self, directive: Directive) -> bool:
        """Whether the directive still lets this user use the models it governs."""
        if self.nationality is None:
            return False
        return any(n in directive.permit_nationality for n in self.nationality)


# All live in Hong Kong; what differs is the nationality their verifier attests.
US_NATIONAL = EndUser("US national", ("US",))
DUAL_NATIONAL = EndUser("CA+US dual", ("CA", "US"))
CN_NATIONAL = EndUser("CN national", ("CN",))
ANONYMOUS = EndUser("unattested", None)


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    name: str
    jurisdiction: str


@dataclass(frozen=True, slots=True)
class Application:
    id: str
    participant: Participant
    name: str
    use_cases: tuple[str, ...]
    data_origin: str
    model_preference: tuple[str, ...]

    def seed(self) -> dict[str, Any]:
        return {"id": self.id, "participant": self.participant.id, "name": self.name,
                "use_cases": list(self.use_cases), "data_origin": self.data_origin,
                "model_preference": list(self.model_preference)}


@dataclass(frozen=True, slots=True)
class Caller:
    """One client task: an application calling on behalf of one end user, with one SDK."""

    application: Application
    user: EndUser
    sdk: Sdk
    model: str
    prompt: str

    @property
    def label(self) -> str:
        return f"{self.application.id} · {self.user.kind} · {self.sdk} → {self.model}"


LANTAU = Participant("lantau-labs", "Lantau Labs (Hong Kong AI lab)", "HK")
PACIFIC = Participant("pacific-analytics-hk", "Pacific Analytics (HK) Ltd, US-owned", "HK")
PEARL = Participant("pearl-river-mfg", "Pearl River Precision (Dongguan, GBA)", "CN")
PARTICIPANTS = (LANTAU, PACIFIC, PEARL)

RESEARCH = Application("lantau-research", LANTAU, "Materials research assistant",
                       ("research.b2b",), "HK", ("fable-5", "mythos-5", "glm-5.2", "qwen-local"))
FRONTIER_EVAL = Application("lantau-evals", LANTAU, "Frontier model evaluations",
                            ("research.b2b",), "HK", ("fable-5", "mythos-5"))
COPILOT = Application("pacific-copilot", PACIFIC, "Analyst copilot", ("assistant.general",),
                      "HK", ("mythos-5", "fable-5", "qwen-local", "glm-5.2"))
QUALITY = Application("pearl-river-qa", PEARL, "Supplier quality reports", ("research.b2b",),
                      "CN", ("fable-5", "mythos-5", "glm-5.2", "qwen-local"))
APPLICATIONS = (RESEARCH, FRONTIER_EVAL, COPILOT, QUALITY)

CALLERS: tuple[Caller, ...] = (
    Caller(RESEARCH, US_NATIONAL, "openai", "fable-5", "Compare two perovskite coatings."),
    Caller(RESEARCH, CN_NATIONAL, "anthropic", "mythos-5", "Draft a lab safety checklist."),
    Caller(RESEARCH, ANONYMOUS, "openai", "fable-5", "Summarise this week's preprints."),
    Caller(FRONTIER_EVAL, US_NATIONAL, "anthropic", "mythos-5", "Score this reasoning task."),
    Caller(FRONTIER_EVAL, CN_NATIONAL, "openai", "fable-5", "Score this coding task."),
    Caller(COPILOT, DUAL_NATIONAL, "anthropic", "fable-5", "Outline the Q3 market memo."),
    Caller(COPILOT, CN_NATIONAL, "openai", "mythos-5", "Explain this term sheet clause."),
    Caller(COPILOT, ANONYMOUS, "anthropic", "mythos-5", "Tidy these meeting notes."),
    Caller(QUALITY, ANONYMOUS, "openai", "fable-5", "Classify this supplier defect report."),
    Caller(QUALITY, CN_NATIONAL, "openai", "glm-5.2", "Translate this inspection note."),
)


LOCAL_CAPACITY = {"requests_per_second": 40, "tokens_per_second": 20000}


def routes(standin_url: str) -> list[dict[str, Any]]:
    """The four routes, all answered by the one stand-in process; `mythos-5` goes through
    the Anthropic adapter, so OpenAI-shaped callers of it exercise translation both ways;
    `qwen-local` is a pool (`endpoints:`) with a declared capacity, as a GPU cluster is."""
    v1 = standin_url + "/v1"

    def route(name: str, provider: str, base_url: str, origin: str, hosting: str,
              tags: Sequence[str] = ()) -> dict[str, Any]:
        return {"name": name, "provider": provider, "base_url": base_url, "origin": origin,
                "hosting": hosting, "export_tags": list(tags), "class": "frontier-chat",
                "timeout_s": 10}

    local = route("qwen-local", "openai", v1, "CN", "HK")
    del local["base_url"]  # the local GPU cluster: a pool (here of the one stand-in)
    local.update(endpoints=[{"base_url": v1, "max_concurrency": 64}],
                 health={"path": "/health", "interval_s": 1}, capacity=LOCAL_CAPACITY)
    return [
        route("fable-5", "openai", v1, "US", "US", ["us-frontier"]),
        route("mythos-5", "anthropic", standin_url, "US", "US", ["us-frontier"]),
        route("glm-5.2", "openai", v1, "CN", "CN"),
        local,
    ]


# -- what should happen ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Expected:
    """The answer a caller should get: a served model, or a refusal code."""

    decision: str
    served: str | None = None
    code: str | None = None

    def __str__(self) -> str:
        return self.code or f"{self.decision} {self.served}"


def expect(caller: Caller, directive: Directive | None) -> Expected:
    """What the directive (or its absence) means for this caller.

    Governed and not inside `permit_only`: the first model of the application's preference
    that the directive does not govern serves (the gateway's fallback order), or, when
    there is none, a `451 legal_restriction`.
    """
    if directive is None or not directive.governs(caller.model) or caller.user.inside(directive):
        return Expected("allow", caller.model)
    for name in caller.application.model_preference:
        if name != caller.model and not directive.governs(name):
            return Expected("reroute", name)
    return Expected("deny", code="legal_restriction")


# -- what happened --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Outcome:
    """One request as the client saw it (times are `time.monotonic()`)."""

    caller: Caller
    started: float
    ended: float
    status: int  # 0: no HTTP answer at all
    decision: str | None = None
    served: str | None = None
    rerouted_from: str | None = None
    policy: str | None = None
    audit_id: str | None = None
    code: str | None = None
    message: str | None = None
    rule: str | None = None
    citation: str | None = None
    answered_by: str | None = None  # the model the answer's text says it came from

    def matches(self, expected: Expected, citation: str) -> bool:
        if expected.code is not None:
            return (self.status == 451 and self.code == expected.code
                    and self.decision == "deny" and self.citation == citation
                    and bool(self.audit_id))
        return (self.status == 200 and self.decision == expected.decision
                and self.served == expected.served and self.answered_by == expected.served
                and self.rerouted_from == (self.caller.model if expected.decision == "reroute"
                                           else None)
                and bool(self.audit_id))

    def describe(self) -> str:
        if self.status == 200:
            via = f" (from {self.rerouted_from})" if self.rerouted_from else ""
            return f"200 {self.decision} {self.served}{via}"
        if self.status == 0:
            return f"no answer: {self.message}"
        return f"{self.status} {self.code}: {self.message}"


PHASES = ("before", "landing", "during", "lifting", "after")
PHASE_TITLES = {
    "before": "Phase 1 · before the directive",
    "landing": "while the directive lands",
    "during": "Phase 2 · directive in force",
    "lifting": "while the revocation lands",
    "after": "Phase 3 · after the revocation",
}


@dataclass
class Timeline:
    """Marks on one monotonic clock; an outcome belongs to the phase its whole life fits in.

    A request that overlaps the window between sending a change and seeing it confirmed
    belongs to `landing` / `lifting`, where either the old or the new answer is right.
    """

    t0: float = field(default_factory=time.monotonic)
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> float:
        self.marks[name] = now = time.monotonic()
        return now

    def since_start(self, t: float) -> float:
        return t - self.t0

    def phase_of(self, o: Outcome) -> str:
        m = self.marks
        inf = float("inf")
        issue_sent, issue_seen = m.get("issue_sent", inf), m.get("issue_confirmed", inf)
        revoke_sent, revoke_seen = m.get("revoke_sent", inf), m.get("revoke_confirmed", inf)
        if o.ended <= issue_sent:
            return "before"
        if o.started < issue_seen:
            return "landing"
        if o.ended <= revoke_sent:
            return "during"
        if o.started < revoke_seen:
            return "lifting"
        return "after"


@dataclass(frozen=True, slots=True)
class Propagation:
    """Seconds from the admin call's answer to the first changed answer, both ways."""

    first_answer_s: float | None  # first request answered under the new state
    header_s: float | None  # first `X-Harbourgate-Policy` header showing the new state
    stale_polls: int  # header polls answered under the old state first (0: in effect at once)
    models: tuple[str, ...] = ()  # what GET /v1/models then lists for an unattested user


@dataclass
class DemoResult:
    """What happened and whether the story held; `exit_code` is 0 only when it did."""

    outcomes: list[Outcome] = field(default_factory=list)
    timeline: Timeline = field(default_factory=Timeline)
    directive: Directive | None = None
    directive_id: str | None = None
    issue: Propagation | None = None
    revoke: Propagation | None = None
    checkpoint: str | None = None
    verify_output: str = ""
    verify_exit: int | None = None
    problems: list[str] = field(default_factory=list)
    stopped_by: str | None = None  # what cut the run short (a DemoError), if anything
    data_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def by_phase(self) -> dict[str, list[Outcome]]:
        out: dict[str, list[Outcome]] = {p: [] for p in PHASES}
        for o in self.outcomes:
            out[self.timeline.phase_of(o)].append(o)
        return out

    @property
    def checkpoint_size(self) -> int | None:
        lines = (self.checkpoint or "").splitlines()
        return int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else None


# -- processes ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _parent_death_signal() -> Callable[[], None] | None:
    """Linux: a function for `preexec_fn` that makes the child get SIGTERM when the demo
    dies, so nothing outlives a killed demo. Resolved here, in the parent: the child only
    calls it (importing after fork could deadlock)."""
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGTERM)


class Process:
    """A `harbourgate` subprocess with its output in a log file."""

    def __init__(self, name: str, args: Sequence[str], log: Path, *, port: int,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        try:
            with log.open("wb") as out:
                self.proc = subprocess.Popen(
                    [*HARBOURGATE, *args], stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                    start_new_session=True,  # Ctrl-C reaches the demo, which stops us in order
                    preexec_fn=_parent_death_signal())
        except OSError as exc:
            raise DemoError(f"cannot start {name}: {exc}") from None

    def wait_ready(self, path: str, timeout: float = START_TIMEOUT_S) -> None:
        """Until GET `path` answers below 500; a process that exits or hangs is a DemoError."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise DemoError(f"{self.name} exited with code {self.proc.returncode} "
                                    f"before it was ready:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.url + path).status_code < 500:
                        return
                time.sleep(0.05)
        raise DemoError(f"{self.name} did not answer GET {path} within {timeout:g} s:\n"
                        f"{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log})"
        got = text.rstrip().splitlines()[-lines:]
        return "\n".join(f"  | {line}" for line in got) or "  | (empty log)"

    def stop(self) -> None:
        """SIGTERM (graceful: the gateway drains its audit queue), then SIGKILL the group."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# -- the verifier and its attestations --------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Verifier:
    """A trusted identity verifier for the run: an Ed25519 key, its JWKS, signed claims."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.kid = "demo-" + secrets.token_hex(4)

    def jwks(self) -> dict[str, Any]:
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw,
                                                 serialization.PublicFormat.Raw)
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": self.kid, "alg": "EdDSA",
                          "use": "sig", "x": _b64(raw)}]}

    def attest(self, user: EndUser, sub: str, ttl_s: int = 900) -> str | None:
        """A compact EdDSA JWS as a verifier issues it; None for a user without one."""
        if user.nationality is None:
            return None
        now = int(time.time())
        header = _b64(json.dumps({"alg": "EdDSA", "kid": self.kid, "typ": "JWT"}).encode())
        claims = {"iss": ISSUER, "sub": sub, "nationality": list(user.nationality),
                  "residence": user.residence, "verification_level": "document",
                  "iat": now, "exp": now + ttl_s}
        payload = _b64(json.dumps(claims).encode())
        signature = _b64(self.key.sign(f"{header}.{payload}".encode()))
        return f"{header}.{payload}.{signature}"


def gateway_config(workdir: Path, standin_url: str, jwks_path: Path) -> dict[str, Any]:
    return {
        "data_dir": str(workdir / "data"),
        "admin_tokens": [{"token_env": "HARBOURGATE_ADMIN_TOKEN", "role": "operator"}],
        "verifiers": {"jwks": str(jwks_path), "issuers": [ISSUER]},
        "routes": routes(standin_url),
        "sandbox": {
            "participants": [{"id": p.id, "name": p.name, "jurisdiction": p.jurisdiction}
                             for p in PARTICIPANTS],
            "applications": [a.seed() for a in APPLICATIONS],
        },
    }


# -- traffic --------------------------------------------------------------------------------

def _answer_model(text: str) -> str | None:
    """The stand-in's answers start with `[model]`: proof of which upstream answered."""
    if text.startswith("[") and "]" in text:
        return text[1:text.index("]")]
    return None


def _refusal(caller: Caller, started: float, exc: openai.APIStatusError | anthropic.APIStatusError
             ) -> Outcome:
    response = exc.response
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error", {}) if isinstance(body, dict) else {}
    error = error if isinstance(error, dict) else {}
    return Outcome(
        caller, started, time.monotonic(), response.status_code,
        decision=response.headers.get("x-harbourgate-decision"),
        policy=response.headers.get("x-harbourgate-policy"),
        audit_id=error.get("audit_id") or response.headers.get("x-harbourgate-audit"),
        code=error.get("code"), message=error.get("message") or response.text[:200],
        rule=error.get("rule"), citation=error.get("citation"))


async def _parsed(raw: Any) -> Any:
    """The SDK's parsed answer: `parse()` is a coroutine in some async raw responses."""
    parsed = raw.parse()
    return await parsed if inspect.isawaitable(parsed) else parsed


class Clients:
    """One OpenAI and one Anthropic async client per application key."""

    def __init__(self, base_url: str, keys: dict[str, str]) -> None:
        self.openai = {app: openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=key,
                                               max_retries=0, timeout=15.0)
                       for app, key in keys.items()}
        self.anthropic = {app: anthropic.AsyncAnthropic(base_url=base_url, api_key=key,
                                                        max_retries=0, timeout=15.0)
                          for app, key in keys.items()}

    async def call(self, caller: Caller, attestation: str | None) -> Outcome:
        """One request through the caller's SDK; every way it can end becomes an Outcome."""
        headers = {"X-Harbourgate-Attestation": attestation} if attestation else {}
        messages: Any = [{"role": "user", "content": caller.prompt}]
        started = time.monotonic()
        try:
            if caller.sdk == "openai":
                raw: Any = await self.openai[caller.application.id].chat.completions \
                    .with_raw_response.create(model=caller.model, messages=messages,
                                              max_tokens=64, extra_headers=headers)
                text = (await _parsed(raw)).choices[0].message.content or ""
            else:
                raw = await self.anthropic[caller.application.id].messages.with_raw_response \
                    .create(model=caller.model, messages=messages, max_tokens=64,
                            extra_headers=headers)
                blocks = (await _parsed(raw)).content
                text = blocks[0].text if blocks and blocks[0].type == "text" else ""
        except (openai.APIStatusError, anthropic.APIStatusError) as exc:
            return _refusal(caller, started, exc)
        except (openai.APIError, anthropic.APIError, httpx.HTTPError) as exc:
            return Outcome(caller, started, time.monotonic(), 0,
                           message=f"{type(exc).__name__}: {exc}")
        h = raw.headers
        return Outcome(caller, started, time.monotonic(), raw.status_code,
                       decision=h.get("x-harbourgate-decision"),
                       served=h.get("x-harbourgate-model"),
                       rerouted_from=h.get("x-harbourgate-rerouted-from"),
                       policy=h.get("x-harbourgate-policy"),
                       audit_id=h.get("x-harbourgate-audit"),
                       answered_by=_answer_model(text))

    async def aclose(self) -> None:
        for client in (*self.openai.values(), *self.anthropic.values()):
            await client.close()


async def _drive(caller: Caller, attestation: str | None, clients: Clients,
                 outcomes: list[Outcome], stop: asyncio.Event,
                 on_outcome: Callable[[Outcome], None]) -> None:
    """One caller's loop: a request, a short pause, until told to stop."""
    while not stop.is_set() and len(outcomes) < MAX_REQUESTS:
        outcome = await clients.call(caller, attestation)
        outcomes.append(outcome)
        on_outcome(outcome)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PACE_S)


def directives_in(header: str | None) -> tuple[str, ...]:
    """The directive ids an `X-Harbourgate-Policy` header names."""
    if not header or "directives=" not in header:
        return ()
    return tuple(d for d in header.split("directives=", 1)[1].strip().split(",") if d)


@dataclass(frozen=True, slots=True)
class PolicySeen:
    """What polling `GET /v1/models` saw: when the change showed, and the models listed."""

    first_s: float | None  # seconds from the admin call's answer; None: never confirmed
    stale: int  # polls answered with the old state before the first showing the new one
    models: tuple[str, ...] = ()


async def _poll_policy(base_url: str, key: str, directive_id: str, *, present: bool,
                       since: float, confirmations: int) -> PolicySeen:
    """Poll `GET /v1/models` on fresh connections (so every worker is asked) until
    `confirmations` answers in a row show the directive in force (or gone)."""
    first: float | None = None
    streak = polls = stale = 0
    deadline = since + PROPAGATION_TIMEOUT_S
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=2.0,
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        while time.monotonic() < deadline:
            polls += 1
            with contextlib.suppress(httpx.HTTPError):
                r = await client.get("/v1/models")
                seen = directive_id in directives_in(r.headers.get("x-harbourgate-policy"))
                if seen == present:
                    if first is None:
                        first, stale = time.monotonic() - since, polls - 1
                    streak += 1
                    if streak >= confirmations:
                        models = tuple(m["id"] for m in r.json().get("data", []))
                        return PolicySeen(first, stale, models)
                else:
                    first, streak = None, 0
            await asyncio.sleep(0.002)
    return PolicySeen(None, polls)


def _seen(seen: PolicySeen) -> str:
    when = "the first poll" if seen.stale == 0 else f"poll {seen.stale + 1}"
    return f"{when} after the admin call answered showed it, {_ms(seen.first_s)} later"


def _first_changed(outcomes: Sequence[Outcome], sent: float, answered: float,
                   changed: Callable[[Outcome], bool]) -> float | None:
    """Seconds from the admin call's answer (`answered`) to the earliest answer showing
    the change among requests answered after the call was sent; 0 when one arrived before
    the admin call's own answer did."""
    times = [o.ended for o in outcomes if o.ended >= sent and changed(o)]
    return max(0.0, min(times) - answered) if times else None


# -- the run --------------------------------------------------------------------------------

@dataclass
class _Run:
    """State shared by the steps of one run."""

    console: Console
    workdir: Path
    phase_s: float
    workers: int
    result: DemoResult
    processes: list[Process] = field(default_factory=list)
    verifier: Verifier = field(default_factory=Verifier)
    admin_token: str = field(default_factory=lambda: "demo-" + secrets.token_urlsafe(24))

    def say(self, text: str) -> None:
        t = self.result.timeline.since_start(time.monotonic())
        self.console.print(f"[dim]t+{t:6.2f}s[/]  {text}")


def run_demo(*, data_dir: Path | str | None = None, keep: bool = False,
             phase_seconds: float = 4.0, workers: int = 1,
             console: Console | None = None) -> DemoResult:
    """Run the whole story and print its timeline; never raises for a failed story.

    `data_dir`: where the configuration, logs and database go; it must be empty or new
    (a `DemoError` says so before anything starts). Without it a temporary directory is
    used and removed at the end unless `keep`.
    `phase_seconds`: how long traffic runs in each of the three phases.
    """
    if console is None:
        console = Console(highlight=False)
        if not console.is_terminal:  # a log or a file: wide enough for the tables
            console = Console(highlight=False, width=100)
    if data_dir is not None:
        workdir = Path(data_dir).resolve()
        if workdir.exists() and (not workdir.is_dir() or any(workdir.iterdir())):
            raise DemoError(f"--data-dir {workdir}: must be a new or empty directory, so "
                            "this run's log holds only this run")
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="harbourgate-demo-"))
    run = _Run(console, workdir, phase_seconds, workers, DemoResult(data_dir=workdir))
    try:
        with _terminate_as_interrupt():
            _story(run)
    except DemoError as exc:  # told in the verdict, after the processes are stopped
        run.result.stopped_by = str(exc)
        run.result.problems.append(str(exc))
    finally:
        for process in reversed(run.processes):
            process.stop()
        if data_dir is None and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
            run.result.data_dir = None
    _verdict(run)
    return run.result


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the demo like Ctrl-C does, so the `finally` stops the processes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _story(run: _Run) -> None:
    console = run.console
    directive = load_directive_file(DIRECTIVE_FILE)
    run.result.directive = directive
    console.print(Panel.fit(
        "[bold]Harbourgate demo[/]: the directive shock of 12 June 2026, replayed on this "
        "machine\n" + f"[dim]{directive.authority}: “{directive.title}” "
        f"({', '.join(directive.models)}; permit only nationality "
        f"{', '.join(directive.permit_nationality)})[/]", border_style="cyan"))
    _print_cast(console)
    gateway, config_path = _start(run)
    keys = _issue_keys(run, gateway)
    asyncio.run(_traffic(run, gateway, keys, directive))
    _local_pool(run, gateway)
    _audit(run, gateway, config_path)


def _start(run: _Run) -> tuple[Process, Path]:
    jwks_path = run.workdir / "verifier-jwks.json"
    jwks_path.write_text(json.dumps(run.verifier.jwks()))
    standin_port, gateway_port = free_port(), free_port()
    standin = Process("harbourgate stand-in", ["stand-in", "--port", str(standin_port)],
                      run.workdir / "stand-in.log", port=standin_port)
    run.processes.append(standin)
    config_path = run.workdir / "harbourgate.yaml"
    config_path.write_text(yaml.safe_dump(gateway_config(run.workdir, standin.url, jwks_path),
                                          sort_keys=False))
    gateway = Process("harbourgate serve", ["serve", "--config", str(config_path), "--port",
                                            str(gateway_port), "--workers", str(run.workers)],
                      run.workdir / "serve.log", port=gateway_port,
                      env={"HARBOURGATE_ADMIN_TOKEN": run.admin_token})
    run.processes.append(gateway)
    standin.wait_ready("/v1/models")
    run.say(f"stand-in provider up at {standin.url} (fable-5, mythos-5, glm-5.2, qwen-local)")
    gateway.wait_ready("/readyz")
    run.say(f"gateway up at {gateway.url} ({run.workers} worker"
            f"{'s' if run.workers > 1 else ''}; config {config_path})")
    return gateway, config_path


def _admin(run: _Run, gateway: Process) -> httpx.Client:
    return httpx.Client(base_url=gateway.url + "/admin/v1", timeout=10.0,
                        headers={"Authorization": f"Bearer {run.admin_token}"})


def _issue_keys(run: _Run, gateway: Process) -> dict[str, str]:
    keys: dict[str, str] = {}
    with _admin(run, gateway) as admin:
        for app in APPLICATIONS:
            r = admin.post(f"/applications/{app.id}/keys")
            if r.status_code != 201:
                raise DemoError(f"POST /admin/v1/applications/{app.id}/keys answered "
                                f"{r.status_code}: {r.text[:300]}")
            keys[app.id] = r.json()["key"]
    run.say(f"API keys issued through the admin API for {len(keys)} applications; "
            f"{sum(1 for c in CALLERS if c.user.nationality)} end users attested by {ISSUER}")
    return keys


async def _traffic(run: _Run, gateway: Process, keys: dict[str, str],
                   directive: Directive) -> None:
    result, timeline = run.result, run.result.timeline
    verifier = run.verifier
    clients = Clients(gateway.url, keys)
    stop = asyncio.Event()
    narrated: set[str] = set()

    def narrate(o: Outcome) -> None:
        """Say so the first time each kind of answer arrives, as it happens."""
        revoke_sent = timeline.marks.get("revoke_sent")
        affected = expect(o.caller, directive).decision != "allow"
        if revoke_sent and o.ended >= revoke_sent and affected and o.decision == "allow":
            key, text = "back", f"first affected caller served as asked again: {o.caller.label}"
        elif o.decision == "reroute":
            key, text = "reroute", (f"first reroute: {o.caller.label}, served by {o.served} "
                                    f"(X-Harbourgate-Rerouted-From: {o.rerouted_from})")
        elif o.status == 451:
            key, text = "451", f"first 451 {o.code}: {o.caller.label}, citing “{o.citation}”"
        elif o.status != 200:
            key = f"{o.status} {o.code}"
            text = f"[red]unexpected: {o.describe()}[/] ({o.caller.label})"
        else:
            return
        if key not in narrated:
            narrated.add(key)
            run.say("  " + text)

    tasks = [asyncio.create_task(_drive(c, verifier.attest(c.user, f"user-{i}"), clients,
                                        result.outcomes, stop, narrate))
             for i, c in enumerate(CALLERS)]
    admin = httpx.AsyncClient(base_url=gateway.url + "/admin/v1", timeout=10.0,
                              headers={"Authorization": f"Bearer {run.admin_token}"})
    poll_key = keys[RESEARCH.id]
    confirmations = 5 * run.workers
    try:
        run.say(f"[bold]phase 1[/]: {len(CALLERS)} callers, openai and anthropic SDKs, "
                f"~{1 / PACE_S:g} requests/s each, for {run.phase_s:g} s")
        await asyncio.sleep(run.phase_s)

        document = directive.to_dict()
        timeline.mark("issue_sent")
        r = await admin.post("/directives", json=document)
        issued = timeline.mark("issue_returned")
        if r.status_code != 201:
            raise DemoError(f"POST /admin/v1/directives answered {r.status_code}: "
                            f"{r.text[:500]}")
        body = r.json()
        result.directive_id = directive_id = body["id"]
        run.say(f"[bold yellow]directive issued[/]: POST /admin/v1/directives → 201, id "
                f"{directive_id}, status {body.get('status')}, issued_at "
                f"{body.get('issued_at')} ({(issued - timeline.marks['issue_sent']) * 1000:.1f}"
                " ms)")
        on = await _poll_policy(gateway.url, poll_key, directive_id, present=True,
                                since=issued, confirmations=confirmations)
        timeline.mark("issue_confirmed")
        if on.first_s is None:
            raise DemoError(f"no X-Harbourgate-Policy header named {directive_id} within "
                            f"{PROPAGATION_TIMEOUT_S:g} s of issuing it")
        run.say(f"X-Harbourgate-Policy names {directive_id}: {_seen(on)}; GET /v1/models for "
                f"an unattested user of {RESEARCH.id} now lists "
                f"{', '.join(on.models) or 'nothing'}")
        run.say(f"[bold]phase 2[/]: the directive is in force, for {run.phase_s:g} s")
        await asyncio.sleep(run.phase_s)

        timeline.mark("revoke_sent")
        r = await admin.delete(f"/directives/{directive_id}")
        revoked = timeline.mark("revoke_returned")
        if r.status_code != 200:
            raise DemoError(f"DELETE /admin/v1/directives/{directive_id} answered "
                            f"{r.status_code}: {r.text[:500]}")
        run.say(f"[bold yellow]directive revoked[/]: DELETE /admin/v1/directives/"
                f"{directive_id} → 200, status {r.json().get('status')}")
        off = await _poll_policy(gateway.url, poll_key, directive_id, present=False,
                                 since=revoked, confirmations=confirmations)
        timeline.mark("revoke_confirmed")
        if off.first_s is None:
            raise DemoError(f"X-Harbourgate-Policy still named {directive_id} "
                            f"{PROPAGATION_TIMEOUT_S:g} s after revoking it")
        run.say(f"X-Harbourgate-Policy no longer names it: {_seen(off)}; GET /v1/models "
                f"lists {', '.join(off.models)} again")
        run.say(f"[bold]phase 3[/]: back to normal, for {run.phase_s:g} s")
        await asyncio.sleep(run.phase_s)
    finally:
        stop.set()
        ended = await asyncio.gather(*tasks, return_exceptions=True)
        await admin.aclose()
        await clients.aclose()
    crashed = [(c, e) for c, e in zip(CALLERS, ended, strict=True) if isinstance(e, Exception)]
    if crashed:
        caller, exc = crashed[0]
        raise DemoError(f"the client task {caller.label} crashed: {type(exc).__name__}: {exc}")

    def affected(o: Outcome) -> bool:
        return expect(o.caller, directive).decision != "allow"

    marks = timeline.marks
    result.issue = Propagation(
        _first_changed(result.outcomes, marks["issue_sent"], issued,
                       lambda o: affected(o) and o.decision in ("reroute", "deny")),
        on.first_s, on.stale, on.models)
    result.revoke = Propagation(
        _first_changed(result.outcomes, marks["revoke_sent"], revoked,
                       lambda o: affected(o) and o.decision == "allow"),
        off.first_s, off.stale, off.models)
    run.say(f"traffic stopped: {len(result.outcomes)} requests")


def _local_pool(run: _Run, gateway: Process) -> None:
    """Say how the local pool took the traffic the directive moved onto it."""
    moved = [o for o in run.result.outcomes if o.served == "qwen-local" and o.decision ==
             "reroute"]
    per_second = Counter(int(o.ended) for o in moved)
    with _admin(run, gateway) as admin:
        r = admin.get("/pools")
    if r.status_code != 200:
        raise DemoError(f"GET /admin/v1/pools answered {r.status_code}: {r.text[:300]}")
    pool = next((p for p in r.json()["data"] if p["model"] == "qwen-local"), None)
    if pool is None:
        raise DemoError("GET /admin/v1/pools does not list the qwen-local pool")
    servers = pool["servers"]
    run.say(f"local pool qwen-local ({len(servers)} server{'s' if len(servers) > 1 else ''}, "
            f"{pool['healthy']} healthy, {sum(s['errors'] for s in servers)} errors) absorbed "
            f"{len(moved)} rerouted requests, at most {max(per_second.values(), default=0)}/s "
            f"against its declared capacity of {LOCAL_CAPACITY['requests_per_second']}/s")


def _audit(run: _Run, gateway: Process, config_path: Path) -> None:
    result = run.result
    with _admin(run, gateway) as admin:
        r = admin.get("/audit/checkpoint")
    if r.status_code != 200:
        raise DemoError(f"GET /admin/v1/audit/checkpoint answered {r.status_code}: "
                        f"{r.text[:300]}")
    result.checkpoint = r.text
    saved = run.workdir / "checkpoint.txt"
    saved.write_text(r.text)
    run.say(f"signed checkpoint fetched: tree size {result.checkpoint_size}")
    done = subprocess.run([*HARBOURGATE, "audit", "verify", "--config", str(config_path),
                           "--checkpoint", str(saved)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "100"})
    result.verify_exit = done.returncode
    result.verify_output = (done.stdout + done.stderr).strip()
    run.say("harbourgate audit verify --config harbourgate.yaml --checkpoint checkpoint.txt:")
    for line in result.verify_output.splitlines():
        run.console.print(f"            [dim]|[/] {line}")


# -- did the story hold? --------------------------------------------------------------------

def acceptable(caller: Caller, phase: str, directive: Directive) -> tuple[Expected, ...]:
    """The answers that are right for this caller in this phase (both while a change lands)."""
    without, under = expect(caller, None), expect(caller, directive)
    return {"before": (without,), "during": (under,), "after": (without,)}.get(
        phase, tuple(dict.fromkeys((without, under))))


def check(result: DemoResult) -> list[str]:
    """Every way the run departed from the story, in words; empty when it held."""
    directive = result.directive
    if directive is None:
        return ["the directive was never loaded"]
    problems: list[str] = []
    wrong: dict[tuple[str, str], list[Outcome]] = {}
    counts: Counter[tuple[str, str]] = Counter()
    for o in result.outcomes:
        phase = result.timeline.phase_of(o)
        counts[(o.caller.label, phase)] += 1
        if not any(o.matches(e, directive.citation) for e in acceptable(o.caller, phase,
                                                                         directive)):
            wrong.setdefault((o.caller.label, phase), []).append(o)
    for (label, phase), bad in wrong.items():
        want = " or ".join(str(e) for e in acceptable(bad[0].caller, phase, directive))
        problems.append(f"{phase}: {label}: {len(bad)} of {counts[(label, phase)]} answers "
                        f"were not {want}; e.g. {bad[0].describe()}")
    for caller in CALLERS:
        for phase in ("before", "during", "after"):
            if not counts[(caller.label, phase)]:
                problems.append(f"{phase}: {caller.label} sent no request that fits the "
                                "phase, so the story is not shown for it")
    if result.issue is None or result.issue.first_answer_s is None:
        problems.append("no affected caller was seen rerouted or refused after the directive")
    if result.revoke is None or result.revoke.first_answer_s is None:
        problems.append("no affected caller was seen served as asked after the revocation")
    if result.verify_exit is None:
        problems.append("the audit log was not verified")
    elif result.verify_exit != 0:
        problems.append(f"harbourgate audit verify failed (exit {result.verify_exit}):\n"
                        f"{result.verify_output}")
    return problems


def unaffected_failures(result: DemoResult) -> tuple[int, int]:
    """(requests, failures) of callers the directive does not touch, over the whole run."""
    directive = result.directive
    if directive is None:
        return 0, 0
    mine = [o for o in result.outcomes if expect(o.caller, directive).decision == "allow"]
    return len(mine), sum(1 for o in mine if o.status != 200)


# -- printing -------------------------------------------------------------------------------

def _print_cast(console: Console) -> None:
    table = Table(title="The sandbox", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("participant")
    table.add_column("application")
    table.add_column("use case")
    table.add_column("model preference")
    for app in APPLICATIONS:
        table.add_row(f"{app.participant.name} [{app.participant.jurisdiction}]", app.id,
                      ", ".join(app.use_cases), " > ".join(app.model_preference))
    console.print(table)
    users = dict.fromkeys(c.user for c in CALLERS)
    console.print("End users, all living in Hong Kong, with the nationality their identity "
                  "verifier attests: " + ", ".join(u.kind for u in users) + ".\n")


def _served(outcomes: Sequence[Outcome]) -> str:
    served = Counter(o.served for o in outcomes if o.status == 200 and o.served)
    return ", ".join(f"{m} {n}" for m, n in sorted(served.items())) or "-"


def _phase_table(title: str, outcomes: Sequence[Outcome], directive: Directive,
                 phase: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False,
                  collapse_padding=True)
    for name, justify in (("application", "left"), ("end user", "left"), ("SDK", "left"),
                          ("asks", "left"), ("sent", "right"), ("served by", "left"),
                          ("rerouted", "right"), ("451", "right"), ("wrong", "right")):
        table.add_column(name, justify=justify, no_wrap=True,  # type: ignore[arg-type]
                         min_width=len(name))
    for caller in CALLERS:
        mine = [o for o in outcomes if o.caller == caller]
        bad = sum(1 for o in mine if not any(o.matches(e, directive.citation)
                                             for e in acceptable(caller, phase, directive)))
        table.add_row(caller.application.id, caller.user.kind, caller.sdk, caller.model,
                      str(len(mine)), _served(mine),
                      str(sum(1 for o in mine if o.decision == "reroute")),
                      str(sum(1 for o in mine if o.status == 451)),
                      f"[red]{bad}[/]" if bad else "0")
    return table


def _verdict(run: _Run) -> None:
    """The tables, the figures and the verdict, after the processes are stopped."""
    console, result = run.console, run.result
    directive = result.directive
    phases = result.by_phase()
    if directive is not None and result.outcomes:
        console.print()
        for phase in ("before", "during", "after"):
            if phases[phase] or result.stopped_by is None:
                console.print(_phase_table(PHASE_TITLES[phase], phases[phase], directive,
                                           phase))
    if directive is None or result.stopped_by is not None:
        hint = "" if result.data_dir is not None else \
            "\n(run again with --keep to keep the configuration and the logs)"
        console.print(Panel("\n".join(f"• {p}" for p in result.problems) + hint,
                            title="[bold red]The story did not run to the end[/]",
                            title_align="left", border_style="red"))
        return
    for phase, new, state in (("landing", directive, "already under the directive"),
                              ("lifting", None, "already back to normal")):
        moving = phases[phase]
        if not moving:
            continue
        changed = sum(1 for o in moving if expect(o.caller, directive) != expect(o.caller, None)
                      and o.matches(expect(o.caller, new), directive.citation))
        wrong = sum(1 for o in moving if not any(o.matches(e, directive.citation)
                                                 for e in acceptable(o.caller, phase, directive)))
        console.print(f"[dim]{PHASE_TITLES[phase]}: {len(moving)} requests in flight, "
                      f"{changed} of the affected ones {state}; wrong answers: {wrong}[/]")
    refusals = Counter((o.rule, o.citation, o.message) for o in phases["during"]
                       if o.status == 451)
    for (rule, citation, message), n in refusals.items():
        console.print(Panel(f"[bold]451 legal_restriction[/] ×{n}\nrule: {rule}\n"
                            f"citation: [bold]{citation}[/]\nmessage: {message}",
                            title="refusals, with their citation", title_align="left",
                            border_style="yellow"))
    _print_figures(console, result)
    result.problems.extend(p for p in check(result) if p not in result.problems)
    if result.ok:
        console.print(Panel("[bold green]The story held[/]: unaffected users never failed; "
                            "affected users were rerouted or refused with the citation "
                            "exactly as the directive says; everyone was back on the model "
                            "they asked for after the revocation; the audit log verifies.",
                            border_style="green"))
    else:
        console.print(Panel("\n".join(f"• {p}" for p in result.problems),
                            title="[bold red]The story did not hold[/]", title_align="left",
                            border_style="red"))
    if result.data_dir is not None:
        console.print(f"[dim]configuration, logs, database and checkpoint kept in "
                      f"{result.data_dir}[/]")


def _ms(seconds: float | None) -> str:
    return "not seen" if seconds is None else f"{seconds * 1000:.1f} ms"


def _print_figures(console: Console, result: DemoResult) -> None:
    table = Table(title="Propagation (from the admin call's answer)", box=box.SIMPLE_HEAD,
                  title_justify="left")
    table.add_column("change")
    table.add_column("first affected answer changed", justify="right")
    table.add_column("X-Harbourgate-Policy changed", justify="right")
    table.add_column("polls still showing the old state", justify="right")
    for name, p in (("directive issued", result.issue), ("directive revoked", result.revoke)):
        if p is not None:
            table.add_row(name, _ms(p.first_answer_s), _ms(p.header_s), str(p.stale_polls))
    console.print(table)
    total, failed = unaffected_failures(result)
    style = "green" if failed == 0 else "red"
    untouched = sum(1 for c in CALLERS if expect(c, result.directive).decision == "allow")
    console.print(f"[{style}]unaffected callers ({untouched} of {len(CALLERS)}: US nationals, "
                  f"and models the directive does not name): {failed} failed requests of "
                  f"{total}, across all phases[/]")
    lines = (result.checkpoint or "").splitlines()
    if len(lines) >= 3:
        console.print(f"audit checkpoint: {lines[0]}, tree size {lines[1]}, root {lines[2]}")
    verdict = ("[green]verified[/]" if result.verify_exit == 0
               else f"[red]FAILED (exit {result.verify_exit})[/]")
    console.print(f"harbourgate audit verify: {verdict}")
