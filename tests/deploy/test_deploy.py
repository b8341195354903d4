"""The deployment files in docs/deploy/ work as shipped: the systemd unit passes
`systemd-analyze verify`, the example configuration passes `config check` and the JSON
Schema, and the nginx configuration, run by a real nginx with TLS in front of
`harbourgate serve`, passes server-sent events through one by one (unbuffered).

Streaming is proven without timing: the upstream sends event k+1 only after the client
has received event k through nginx and the gateway; a buffering proxy deadlocks that
exchange, and the test fails at its (generous) wait.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harbourgate import config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
WAIT_S = 120
EVENTS = 5
ADMIN_TOKEN = "deploy-test-admin-token-0123456789"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
HARBOURGATE_BIN = Path(sys.executable).with_name("harbourgate")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- systemd --------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` with the paths pointed at this installation; any warning
    (an unknown key, a bad value, a missing executable) fails the test."""
    conf = tmp_path / "harbourgate.yaml"
    conf.write_text((DEPLOY / "harbourgate.yaml").read_text())
    unit = (DEPLOY / "harbourgate.service").read_text()
    unit = unit.replace("/opt/harbourgate/bin/harbourgate", str(HARBOURGATE_BIN))
    unit = unit.replace("/etc/harbourgate/harbourgate.yaml", str(conf))
    path = tmp_path / "harbourgate.service"
    path.write_text(unit)
    out = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                         text=True, timeout=WAIT_S)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr
    # and what ExecStartPre runs accepts the shipped configuration
    check = subprocess.run([str(HARBOURGATE_BIN), "config", "check", str(conf)],
                           capture_output=True, text=True, timeout=WAIT_S)
    assert check.returncode == 0, check.stderr


def test_the_example_configuration_parses_and_matches_the_schema() -> None:
    from harbourgate import configschema

    path = DEPLOY / "harbourgate.yaml"
    settings = config.load(path, environ={})
    assert settings.logging.format == "json" and settings.server.workers == 4
    jsonschema.validate(yaml.safe_load(path.read_text()), configschema.schema())


# -- nginx in front of the gateway ------------------------------------------------------------

class GatedUpstream:
    """An OpenAI-compatible upstream that streams one chat chunk, then waits until the test
    says the client has it before sending the next."""

    def __init__(self) -> None:
        self.received = [threading.Event() for _ in range(EVENTS)]
        self.stalled: list[int] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the gateway's call
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.end_headers()
                for i in range(EVENTS):
                    last = i == EVENTS - 1
                    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk",
                             "created": 0, "model": "slow-local",
                             "choices": [{"index": 0, "delta": {"content": f"w{i} "},
                                          "finish_reason": "stop" if last else None}]}
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                    self.wfile.flush()
                    if not upstream.received[i].wait(WAIT_S):
                        upstream.stalled.append(i)
                        return
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for event in self.received:
            event.set()
        self.server.shutdown()
        self.server.server_close()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway.example.org")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def nginx_conf(tmp_path: Path, listen: int, upstream: int) -> Path:
    """docs/deploy/nginx.conf with only its marked lines pointed at this test."""
    cert, key = self_signed(tmp_path)
    site = (DEPLOY / "nginx.conf").read_text()
    site, n1 = re.subn(r"server 127\.0\.0\.1:8080;", f"server 127.0.0.1:{upstream};", site)
    site, n2 = re.subn(r"listen 443 ssl http2;", f"listen 127.0.0.1:{listen} ssl http2;", site)
    site, n3 = re.subn(r"/etc/ssl/harbourgate/fullchain\.pem", str(cert), site)
    site, n4 = re.subn(r"/etc/ssl/harbourgate/privkey\.pem", str(key), site)
    assert (n1, n2, n3, n4) == (1, 1, 1, 1), "the marked lines of nginx.conf changed"
    (tmp_path / "harbourgate.conf").write_text(site)
    temp = tmp_path / "nginx-temp"
    temp.mkdir()
    main = tmp_path / "nginx-main.conf"
    main.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {tmp_path / 'nginx.pid'};
error_log {tmp_path / 'nginx-error.log'} info;
events {{ worker_connections 256; }}
http {{
    access_log {tmp_path / 'nginx-access.log'};
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {tmp_path / 'harbourgate.conf'};
}}
""")
    return main


def wait_for_port(port: int, proc: subprocess.Popen[Any], log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}: {log.read_text(errors='replace')}")


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[int, GatedUpstream]]:
    if NGINX is None:
        pytest.skip("nginx is not installed (scripts/test installs it from Debian's packages "
                    "where it can)")
    upstream = GatedUpstream()
    gateway_port, nginx_port = free_port(), free_port()
    conf = tmp_path / "gateway.yaml"
    conf.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"),
        "routes": [{"name": "slow-local", "provider": "openai", "base_url": upstream.url,
                    "origin": "HK", "hosting": "HK", "class": "frontier-chat",
                    "timeout_s": WAIT_S}],
        "sandbox": {"participants": [{"id": "acme", "name": "Acme", "jurisdiction": "HK"}],
                    "applications": [{"id": "acme-app", "participant": "acme",
                                      "name": "Acme app", "use_cases": ["research.b2b"],
                                      "data_origin": "HK",
                                      "model_preference": ["slow-local"]}]},
    }))
    gateway_log = tmp_path / "gateway.log"
    gateway = subprocess.Popen(
        [str(HARBOURGATE_BIN), "serve", "--config", str(conf), "--port", str(gateway_port)],
        stdout=gateway_log.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, "HARBOURGATE_ADMIN_TOKEN": ADMIN_TOKEN})
    nginx_log = tmp_path / "nginx-error.log"
    nginx = subprocess.Popen([NGINX, "-c", str(nginx_conf(tmp_path, nginx_port, gateway_port)),
                              "-e", str(nginx_log)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for_port(gateway_port, gateway, gateway_log)
        wait_for_port(nginx_port, nginx, nginx_log)
        yield nginx_port, upstream
    finally:
        stop(nginx)
        stop(gateway)
        upstream.close()


def https(port: int) -> http.client.HTTPSConnection:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test's own self-signed certificate
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=WAIT_S, context=context)


def call(port: int, method: str, path: str, body: Any, token: str) -> http.client.HTTPResponse:
    conn = https(port)
    conn.request(method, path, body=json.dumps(body),
                 headers={"authorization": f"Bearer {token}",
                          "content-type": "application/json"})
    return conn.getresponse()


def test_sse_streams_through_nginx_one_event_at_a_time(
        site: tuple[int, GatedUpstream]) -> None:
    port, upstream = site
    answer = call(port, "POST", "/admin/v1/applications/acme-app/keys", {}, ADMIN_TOKEN)
    assert answer.status in (200, 201), answer.read()
    key = json.loads(answer.read())["key"]

    answer = call(port, "POST", "/v1/chat/completions", {
        "model": "slow-local", "stream": True,
        "messages": [{"role": "user", "content": "count slowly"}]}, key)
    assert answer.status == 200, answer.read()
    assert answer.getheader("content-type", "").startswith("text/event-stream")
    buffer, texts, done = b"", [], False
    while not done:
        chunk = answer.read1(65536)
        assert chunk, f"the stream ended early after {texts} (upstream stalled at " \
                      f"{upstream.stalled})"
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            data = event.removeprefix(b"data: ").strip()
            if data == b"[DONE]":
                done = True
                break
            payload = json.loads(data)
            assert "choices" in payload, (
                f"an error instead of event {len(texts)}: {payload}; a buffering proxy holds "
                "events back until the upstream gives up")
            delta = payload["choices"][0]["delta"].get("content")
            if delta:
                texts.append(delta)
                # only now may the upstream send the next event
                upstream.received[int(delta.strip()[1:])].set()
    assert texts == [f"w{i} " for i in range(EVENTS)]
    assert upstream.stalled == []
