"""`harbourgate serve` as a process: binds first, then announces (port 0 gives the real port);
a port in use is exit 2; JSON logs for every line it writes; with --workers N a private
metrics folder, dead workers' gauges dropped, and the folder removed on exit."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from harbourgate.cli import main

HARBOURGATE = [sys.executable, "-m", "harbourgate"]
READY_S = 120


def config_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\n{extra}")
    return path


def test_a_port_in_use_exits_2_with_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--config", str(config_file(tmp_path)),
                                           "--port", str(port)])
    assert result.exit_code == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert "--port" in result.output
    assert "listening" not in result.output


def test_an_unknown_host_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--config", str(config_file(tmp_path)),
                                       "--host", "no-such-host.invalid", "--port", "0"])
    assert result.exit_code == 2 and "--host no-such-host.invalid" in result.output


class Served:
    def __init__(self, tmp_path: Path, *args: str, extra: str = "") -> None:
        self.stderr_path = tmp_path / "stderr.log"
        self.proc = subprocess.Popen(
            [*HARBOURGATE, "serve", "--config", str(config_file(tmp_path, extra)),
             "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=self.stderr_path.open("wb"), text=True)
        self.port = 0
        self.lines: list[str] = []
        deadline = time.monotonic() + READY_S
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"serve exited:\n{self.stderr()}")
            self.lines.append(line)
            if line.startswith("Harbourgate listening on http://127.0.0.1:"):
                self.port = int(line.split("http://127.0.0.1:")[1].split(" ")[0])
                return
        raise AssertionError("no announcement")

    def get(self, path: str) -> tuple[int, str]:
        deadline = time.monotonic() + READY_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                            timeout=READY_S) as answer:
                    return answer.status, answer.read().decode()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path, extra="logging: {format: json}\n")
    yield s
    s.stop()


def test_announced_only_once_bound_and_every_log_line_is_json(served: Served) -> None:
    # the socket is listening when the line is printed: connecting cannot be refused
    with socket.create_connection(("127.0.0.1", served.port), timeout=READY_S):
        pass
    status, body = served.get("/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    # uvicorn stops gracefully, then re-raises SIGTERM so the exit status says why
    assert served.stop() in (0, -signal.SIGTERM)
    lines = [line for line in served.stderr().splitlines() if line.strip()]
    assert lines, "uvicorn says it started and stopped"
    records = [json.loads(line) for line in lines]  # every line, uvicorn's included
    assert {"uvicorn.error"} <= {r["logger"] for r in records}
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def worker_env(pid: int, name: str) -> str | None:
    data = Path(f"/proc/{pid}/environ").read_bytes()
    for item in data.split(b"\0"):
        key, _, value = item.partition(b"=")
        if key.decode() == name:
            return value.decode()
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_workers_get_a_private_metrics_folder_removed_on_exit(tmp_path: Path) -> None:
    s = Served(tmp_path, "--workers", "2")
    try:
        s.get("/healthz")
        folder = Path(next(d for p in children(s.proc.pid)
                           if (d := worker_env(p, "PROMETHEUS_MULTIPROC_DIR"))))
        assert folder.is_dir() and (folder.stat().st_mode & 0o777) == 0o700
        # each worker keeps its live gauges in files named by its pid
        deadline = time.monotonic() + READY_S
        workers: set[int] = set()
        while len(workers) < 2:
            assert time.monotonic() < deadline, sorted(p.name for p in folder.iterdir())
            workers = {int(p.stem.rsplit("_", 1)[1]) for p in folder.glob("gauge_live*_*.db")}
            time.sleep(0.2)
        assert workers <= set(children(s.proc.pid))
        # a worker dies: its live gauges leave the exposition at the next scrape
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + READY_S
        while list(folder.glob(f"gauge_live*_{victim}.db")):
            assert time.monotonic() < deadline
            status, text = s.get("/metrics")
            assert status == 200
            time.sleep(0.2)
        assert "harbourgate_audit_queue_depth" in text
    finally:
        assert s.stop() in (0, -signal.SIGTERM), s.stderr()
    assert not folder.exists()
