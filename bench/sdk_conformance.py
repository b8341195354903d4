"""The official SDKs' own API-resource tests, run against a live `harbourgate serve`.

    .venv/bin/python bench/sdk_conformance.py [--cross] [--json FILE]

The openai and anthropic sdists ship `tests/api_resources/`, which their authors run against
a mock of the real API. This script runs the files for every endpoint Harbourgate serves
against Harbourgate instead:

1. `pip download` the sdists of the openai and anthropic releases installed beside
   Harbourgate (so the tests match the SDKs the end-to-end suite uses) and unpack them
   under bench/out/conformance/ (nothing is copied into the repository);
2. make bench/.venv-conformance with those SDKs and their test dependencies (once);
3. start a stand-in provider and `harbourgate serve` with routes named as the tests ask
   (`--cross` serves each API shape by a provider of the other shape, to exercise
   translation), and give the tests' fixed API keys to one sandbox application (seeded
   before the start, audited like any admin action);
4. run the in-scope tests of each file with TEST_API_BASE_URL pointing at the gateway, and
   print passed/failed per file. Out-of-scope tests (endpoints Harbourgate does not serve,
   such as stored-completion CRUD and batches) are deselected, and listed with the reason.

Exit status: 0 when every in-scope test passed, 1 otherwise, 2 when the run could not start.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "out" / "conformance"
VENV = ROOT / "bench" / ".venv-conformance"
HARBOURGATE = [sys.executable, "-m", "harbourgate"]
WAIT_S = 120.0

TEST_KEYS = {"openai": "My API Key", "anthropic": "my-anthropic-api-key"}
"""The API keys the SDKs' conftest.py files hand their clients."""

TEST_DEPENDENCIES = ["pytest", "pytest-asyncio", "pytest-xdist", "inline-snapshot", "rich",
                     "respx", "time-machine", "dirty-equals", "http-snapshot[httpx]==0.1.9",
                     "httpx2"]


@dataclass(frozen=True)
class Scope:
    """One test file: which of its tests Harbourgate serves, and why the rest are out."""

    path: str
    excluded: tuple[tuple[str, str], ...] = ()  # (pytest -k expression, reason)
    api: str = "chat"  # what the OpenAI-shaped routes speak upstream for this file


STORED = "stored-object CRUD: Harbourgate keeps no completions, responses or conversations"
UNKNOWN_RESPONSE = ("continues previous_response_id 'previous_response_id' / 'resp_123', a "
                    "response no server holds: the upstream refuses it (400, passed through "
                    "by the gateway) where the SDK's mock server answers anything")
SCOPES: dict[str, tuple[Scope, ...]] = {
    "openai": (
        Scope("tests/api_resources/chat/test_completions.py",
              (("retrieve", STORED), ("update", STORED), ("list", STORED),
               ("delete", STORED))),
        Scope("tests/api_resources/test_responses.py",
              (("retrieve", STORED), ("delete", STORED), ("cancel", STORED),
               ("compact", "server-side compaction needs stored responses"),
               ("with_all_params", UNKNOWN_RESPONSE)), api="responses"),
        Scope("tests/api_resources/responses/test_input_tokens.py",
              (("with_all_params", UNKNOWN_RESPONSE),), api="responses"),
        Scope("tests/api_resources/test_embeddings.py",
              (("(strict or aiohttp) and not with_all_params",
                "without encoding_format the SDK asks for base64 and validates the base64 "
                "answer strictly against the float schema before decoding it; it fails "
                "against the real API too"),)),
        Scope("tests/api_resources/test_models.py",
              (("delete", "deleting fine-tuned models is an account action, not a gateway's"),)),
    ),
    "anthropic": (
        Scope("tests/api_resources/test_messages.py"),
        Scope("tests/api_resources/test_models.py"),
    ),
}


@dataclass
class FileResult:
    sdk: str
    path: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    deselected: int = 0
    failures: list[str] = field(default_factory=list)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cross", action="store_true",
                        help="serve each API shape by a provider of the other shape")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--sdk", choices=sorted(SCOPES), action="append",
                        help="only this SDK's tests (repeatable)")
    args = parser.parse_args()
    sdks = args.sdk or sorted(SCOPES)
    WORK.mkdir(parents=True, exist_ok=True)
    try:
        sources = {sdk: unpack(sdk) for sdk in sdks}
        python = test_venv()
    except subprocess.CalledProcessError as exc:
        print(f"cannot prepare the SDK tests: {exc}", file=sys.stderr)
        return 2
    results: list[FileResult] = []
    for api in ("chat", "responses"):  # the OpenAI routes speak one API per deployment
        scopes = [(sdk, scope) for sdk in sdks for scope in SCOPES[sdk] if scope.api == api]
        if not scopes:
            continue
        with Deployment(sources, cross=args.cross, api=api) as deployment:
            for sdk, scope in scopes:
                results.append(run_file(python, sdk, sources[sdk], scope, deployment))
    report(results, cross=args.cross)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))
    return 0 if all(r.failed == 0 and r.passed > 0 for r in results) else 1


# -- the SDKs' tests ------------------------------------------------------------------------


def unpack(sdk: str) -> Path:
    """The unpacked sdist of the installed release of `sdk`."""
    version = importlib.metadata.version(sdk)
    target = WORK / f"{sdk}-{version}"
    if (target / "tests" / "api_resources").is_dir():
        return target
    archive = WORK / f"{sdk}-{version}.tar.gz"
    if not archive.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--no-binary", ":all:", f"{sdk}=={version}", "-d", str(WORK)],
                       check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(WORK, filter="data")
    return target


def test_venv() -> Path:
    """A venv with the installed SDK releases and what their test suites import."""
    pins = [f"{sdk}[aiohttp]=={importlib.metadata.version(sdk)}" for sdk in sorted(SCOPES)]
    wanted = " ".join(pins + TEST_DEPENDENCIES)
    python = VENV / "bin" / "python"
    stamp = VENV / ".harbourgate-stamp"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *pins, *TEST_DEPENDENCIES], check=True)
    stamp.write_text(wanted)
    return python


def models_in(sdk: str, source: Path) -> set[str]:
    """The model names the tests ask for, so the gateway has a route of each name."""
    names: set[str] = set()
    for scope in SCOPES[sdk]:
        text = (source / scope.path).read_text()
        names.update(re.findall(r'model(?:_id)?="([^"]+)"', text))
        names.update(re.findall(r'"model":\s*"([^"]+)"', text))
        if scope.path.endswith("test_models.py"):
            names.update(re.findall(r'\.retrieve\(\s*"([^"]+)"', text))
    if sdk == "anthropic":  # test_deprecated_model_warning asks for each of these
        from anthropic.resources.messages import DEPRECATED_MODELS

        names.update(DEPRECATED_MODELS)
    names.discard("")
    return names


def run_file(python: Path, sdk: str, source: Path, scope: Scope,
             deployment: Deployment) -> FileResult:
    result = FileResult(sdk, scope.path)
    junit = WORK / f"junit-{sdk}-{Path(scope.path).stem}.xml"
    junit.unlink(missing_ok=True)
    base = deployment.url + ("/v1" if sdk == "openai" else "")
    deselect = " or ".join(f"({expression})" for expression, _ in scope.excluded)
    command = [str(python), "-m", "pytest", scope.path, "-q", "-p", "no:cacheprovider",
               "-o", "addopts=", f"--junitxml={junit}", "--tb=line"]
    if (source / "tests" / "_alias_httpx.py").exists():
        command += ["-p", "tests._alias_httpx"]
    if deselect:
        command += ["-k", f"not ({deselect})"]
    env = {**os.environ, "TEST_API_BASE_URL": base, "PYTHONPATH": str(source)}
    env.pop("VIRTUAL_ENV", None)
    completed = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True,
                               timeout=900)
    if not junit.exists():
        result.failed = 1
        result.failures.append(f"pytest did not run: {completed.stdout[-800:]}"
                               f"{completed.stderr[-800:]}")
        return result
    for case in ET.parse(junit).getroot().iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            result.failed += 1
            message = (problem.get("message") or problem.text or "").strip().splitlines()
            result.failures.append(f"{case.get('name')}: {message[0][:300] if message else ''}")
        elif case.find("skipped") is not None:
            result.skipped += 1
        else:
            result.passed += 1
    match = re.search(r"(\d+) deselected", completed.stdout)
    result.deselected = int(match.group(1)) if match else 0
    return result


def report(results: list[FileResult], *, cross: bool) -> None:
    mode = "cross-shape (each SDK served by the other provider shape)" if cross else \
        "same shape (each SDK served by a provider of its own shape)"
    print(f"\nSDK API-resource tests against harbourgate serve, {mode}\n")
    width = max(len(f"{r.sdk} {r.path}") for r in results)
    print(f"{'file'.ljust(width)}  passed  failed  skipped  excluded")
    for r in results:
        print(f"{f'{r.sdk} {r.path}'.ljust(width)}  {r.passed:6}  {r.failed:6}  {r.skipped:7}"
              f"  {r.deselected:8}")
    print(f"\n{sum(r.passed for r in results)} passed, {sum(r.failed for r in results)} failed")
    for r in results:
        for failure in r.failures[:40]:
            print(f"  FAILED {r.sdk} {r.path}::{failure}")
    print("\nExcluded as out of scope:")
    for sdk, scopes in SCOPES.items():
        for scope in scopes:
            for expression, reason in scope.excluded:
                print(f"  {sdk} {scope.path}: -k '{expression}': {reason}")


# -- the deployment under test --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Deployment:
    """A stand-in provider and `harbourgate serve` routing the tests' model names to it."""

    def __init__(self, sources: dict[str, Path], *, cross: bool, api: str) -> None:
        self.sources = sources
        self.cross = cross
        self.api = api
        self.dir = WORK / f"deployment-{api}{'-cross' if cross else ''}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.url = ""

    def __enter__(self) -> Deployment:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        standin = self._start([*HARBOURGATE, "stand-in", "--port", "{port}"], "/v1/models",
                              "standin.log")
        config = self._config(standin)
        path = self.dir / "harbourgate.yaml"
        path.write_text(yaml.safe_dump(config))
        seed_test_keys(path)
        self.url = self._start([*HARBOURGATE, "serve", "--config", str(path), "--port",
                                "{port}"], "/readyz", "serve.log")
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.processes):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    def _start(self, args: list[str], ready: str, log: str) -> str:
        port = free_port()
        handle = (self.dir / log).open("wb")
        proc = subprocess.Popen([a.replace("{port}", str(port)) for a in args], stdout=handle,
                                stderr=subprocess.STDOUT)
        self.processes.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{args[2]} exited: {(self.dir / log).read_text()}")
            try:
                if httpx.get(url + ready, timeout=2).status_code < 500:
                    return url
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"{args[2]} did not become ready: {(self.dir / log).read_text()}")

    def _config(self, standin: str) -> dict:
        routes = []
        for sdk, source in self.sources.items():
            own = "anthropic" if sdk == "anthropic" else "openai"
            provider = {"openai": "anthropic", "anthropic": "openai"}[own] if self.cross else own
            for name in sorted(models_in(sdk, source)):
                embedding = "embedding" in name
                routes.append({
                    "name": name,
                    "provider": "openai" if embedding else provider,
                    "base_url": standin + "/v1" if embedding or provider == "openai"
                    else standin,
                    "origin": "US", "hosting": "US",
                    "class": "embedding-small" if embedding else "frontier-chat"})
                if provider == "openai" and not embedding and self.api == "responses":
                    routes[-1]["api"] = "responses"
        # A Responses request may name no model: the application's first preference serves
        # it, so the OpenAI routes come first.
        names = [r["name"] for r in sorted(routes, key=lambda r: r["provider"] != "openai")
                 if r["class"] == "frontier-chat"]
        return {
            "data_dir": str(self.dir / "data"),
            "routes": routes,
            "sandbox": {
                "participants": [{"id": "sdk", "name": "SDK conformance", "jurisdiction": "HK"}],
                "applications": [{"id": "sdk-tests", "participant": "sdk",
                                  "name": "The SDKs' own tests", "use_cases": ["research.b2b"],
                                  "data_origin": "HK", "model_preference": names}]},
        }


def seed_test_keys(config_path: Path) -> None:
    """Give the SDK tests' fixed keys to the sandbox application, audited, before the start."""
    from harbourgate import config
    from harbourgate.app import prepare
    from harbourgate.audit.log import AuditLog
    from harbourgate.identity.keys import display_prefix, generate_key_id, hash_key
    from harbourgate.store import Store, registry
    from harbourgate.store.schema import api_keys
    from harbourgate.store.timestamps import utc_now

    settings = config.load(config_path, environ={})
    prepare(settings)
    store = Store(settings.effective_database_url)
    audit = AuditLog.open(settings, store)
    audit.start()
    try:
        for sdk, key in TEST_KEYS.items():
            key_id = generate_key_id()
            with store.engine.begin() as conn:
                conn.execute(api_keys.insert().values(
                    id=key_id, application_id="sdk-tests", key_hash=hash_key(key),
                    prefix=display_prefix(key), created_at=utc_now(), revoked_at=None))
                registry.bump_state_version(conn)
            audit.append_sync({"kind": "admin", "action": "key.import", "actor": "conformance",
                               "application_id": "sdk-tests", "key_id": key_id,
                               "key_sha256": hashlib.sha256(key.encode()).hexdigest()[:16],
                               "reason": f"the {sdk} SDK tests' fixed key"})
    finally:
        audit.close()
        store.close()


if __name__ == "__main__":
    sys.exit(main())
