"""Structured logs: one line per request with the facts and nothing of the prompt; JSON or
text for the whole process (uvicorn's loggers included); request ids bounded and sanitised;
a bad `logging:` section exits 2 naming the key."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from harbourgate.cli import main
from harbourgate.observe import logs

SAFE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
PROMPT = "My HKID is A123456(7), call me on +852 9123 4567, email chan.tai.man@example.hk"


def run_logging(fmt: str, access: bool = True, level: str = "info") -> list[str]:
    """Configure logging in a fresh process as serve does, log through our loggers and
    uvicorn's, and return what reached stderr."""
    code = textwrap.dedent(f"""
        import logging
        from harbourgate.config import LoggingSettings
        from harbourgate.observe import labels, logs
        labels.configure(["fable-5", "glm-5.2"])
        logs.configure(LoggingSettings(level={level!r}, format={fmt!r}, access={access!r}))
        logging.getLogger("uvicorn.error").info("Started server process [1]")
        logging.getLogger("harbourgate.gateway").warning("upstream %s failed: %s", "glm-5.2",
                                                         "connection refused")
        logging.getLogger("harbourgate.gateway").debug("debug detail")
        logs.access(request_id="req-42", audit_id="01JAUDIT", application="acme-research",
                    model={PROMPT!r}, served="glm-5.2", decision="reroute", status=200,
                    overhead_ms=0.41234, upstream_ms=12.5, endpoint="/v1/chat/completions")
        logs.access(request_id="req-43", audit_id=None, application=None, model="fable-5",
                    served=None, decision="deny", status=401, overhead_ms=0.1,
                    upstream_ms=None, code="invalid_api_key")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout == ""
    return out.stderr.splitlines()


def test_json_is_one_object_per_line_for_every_logger() -> None:
    lines = run_logging("json")
    records = [json.loads(line) for line in lines]
    assert [r["logger"] for r in records] == ["uvicorn.error", "harbourgate.gateway",
                                              "harbourgate.access", "harbourgate.access"]
    for r in records:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"])
        assert r["level"] in ("INFO", "WARNING") and r["message"]
    assert records[1]["message"] == "upstream glm-5.2 failed: connection refused"
    access = records[2]
    assert access == {
        "time": access["time"], "level": "INFO", "logger": "harbourgate.access",
        "message": "request", "request_id": "req-42", "audit_id": "01JAUDIT",
        "application": "acme-research", "endpoint": "/v1/chat/completions",
        "model": "other", "served": "glm-5.2", "decision": "reroute", "status": 200,
        "code": "ok", "overhead_ms": 0.412, "upstream_ms": 12.5}
    assert records[3]["code"] == "invalid_api_key" and records[3]["upstream_ms"] is None


def test_text_is_a_readable_line_with_time_level_and_fields() -> None:
    lines = run_logging("text")
    assert len(lines) == 4
    assert re.fullmatch(r"\S+Z INFO uvicorn\.error Started server process \[1\]", lines[0])
    assert re.fullmatch(
        r"\S+Z INFO harbourgate\.access request request_id=req-42 audit_id=01JAUDIT "
        r"application=acme-research endpoint=/v1/chat/completions model=other served=glm-5.2 "
        r"decision=reroute status=200 code=ok overhead_ms=0\.412 upstream_ms=12\.5", lines[2])
    assert "audit_id=- application=- " in lines[3]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_access_log_never_carries_prompt_text_or_personal_data(fmt: str) -> None:
    """The made-up 'model name' above holds a whole prompt with an HKID, a phone number and
    an email address: none of it reaches the log."""
    text = "\n".join(run_logging(fmt))
    for secret in ("A123456", "9123", "4567", "chan.tai.man", "example.hk", "HKID", "call me"):
        assert secret not in text


def test_the_level_and_the_access_switch_are_honoured() -> None:
    lines = run_logging("text", access=False, level="warning")
    assert len(lines) == 1 and " WARNING harbourgate.gateway upstream" in lines[0]
    lines = run_logging("text", level="debug")
    assert any("DEBUG harbourgate.gateway debug detail" in line for line in lines)


def test_access_off_costs_one_check() -> None:
    assert logs.access_enabled() in (True, False)  # readable without configuring anything


@pytest.mark.parametrize("value", [
    b"req-1", b"01J9ZQ3K8W4X6Y2B5N7M9P1R3T", b"a" * 128, b"trace:abc/def@x+y=z_.-"])
def test_a_well_formed_request_id_is_kept(value: bytes) -> None:
    assert logs.request_id(value) == value.decode()


@pytest.mark.parametrize("value", [
    None, b"", b"a" * 129, b"req 1", b"req\r\nx-evil: 1", b"caf\xc3\xa9", b"<script>",
    b"a\x00b", b'"quoted"'])
def test_a_malformed_request_id_is_replaced_not_echoed(value: bytes | None) -> None:
    replaced = logs.request_id(value)
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)
    assert value is None or replaced.encode() != value


def test_generated_request_ids_differ() -> None:
    ids = [logs.new_request_id() for _ in range(1000)]  # several reads of the random source
    assert len(set(ids)) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_never_hands_out_its_parents_unused_request_ids() -> None:
    logs.new_request_id()  # the parent now holds unused ids
    unused = set(logs._ids)
    assert unused
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its first ids, and leave at once
        os.close(read)
        os.write(write, "".join(logs.new_request_id() for _ in range(4)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    ids = {child[i:i + 32] for i in range(0, len(child), 32)}
    assert len(ids) == 4 and not ids & unused


@given(st.binary(max_size=300))
def test_any_header_value_gives_a_safe_request_id(value: bytes) -> None:
    assert SAFE_ID.fullmatch(logs.request_id(value))


@given(st.text(max_size=500))
def test_safe_token_is_bounded_and_printable(value: str) -> None:
    token = logs.safe_token(value)
    assert len(token) <= 65 and re.fullmatch(r"[A-Za-z0-9._:@/+=\-…]*", token)


@pytest.mark.parametrize(("yaml_text", "key"), [
    ("logging: {level: loud}", "logging.level"),
    ("logging: {format: xml}", "logging.format"),
    ("logging: {access: maybe}", "logging.access"),
    ("logging: {colour: true}", "logging.colour"),
    ("logging: [info]", "logging"),
    ("telemetry: {otlp_endpoint: 'collector:4318'}", "telemetry.otlp_endpoint"),
    ("telemetry: {otlp_endpoint: 'ftp://x'}", "telemetry.otlp_endpoint"),
    ("telemetry: {export_interval_s: 0}", "telemetry.export_interval_s"),
    ("telemetry: {service_name: ''}", "telemetry.service_name"),
    ("telemetry: {sampler: always}", "telemetry.sampler"),
])
def test_a_bad_logging_or_telemetry_section_exits_2_naming_the_key(
        tmp_path: Path, yaml_text: str, key: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text + "\n")
    for args in (["config", "check", str(path)], ["serve", "--config", str(path)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert f"{path}: {key}: " in result.output


@given(st.lists(st.floats(0, 4_102_444_800, allow_nan=False), min_size=1, max_size=5))
def test_a_line_is_stamped_as_the_record_was_created(moments: list[float]) -> None:
    """The shared per-second text (`audit.record.timestamp_ms`) gives what formatting each
    moment in full gives, in any order of seconds."""
    for created in moments:
        entry = logging.LogRecord("x", logging.INFO, "", 0, "m", (), None)
        entry.created, entry.msecs = created, (created - int(created)) * 1000
        t = time.gmtime(created)
        assert logs._timestamp(entry) == (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:"
            f"{t.tm_min:02d}:{t.tm_sec:02d}.{int(entry.msecs):03d}Z")
