"""`harbourgate serve` and `harbourgate stand-in`.

`serve` binds its socket before it says anything, so "listening" is never a lie and a port
already in use is a clear exit 2, not a stack trace from inside uvicorn.
"""

from __future__ import annotations

import errno
import inspect
import os
import shutil
import socket
import tempfile
from pathlib import Path

import click

from harbourgate.cli.common import InputError, load_settings


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or exit 2 saying why (in use, no such address)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"--host {host}: not an address of this machine ({exc.strerror})"
                         ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InputError(f"port {port} on {host} is already in use: stop what listens "
                             "there, or choose another with --port (or server.port)") from None
        if exc.errno == errno.EACCES:
            raise InputError(f"port {port} on {host} needs privileges this user lacks: use a "
                             "port above 1023 behind a reverse proxy") from None
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML configuration file; without it, the embedded default.")
@click.option("--host", default=None, help="Interface to listen on [config server.host].")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port to listen on [config server.port].")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Worker processes [config server.workers].")
def serve(config_path: str | None, host: str | None, port: int | None,
          workers: int | None) -> None:
    """Run the gateway (data plane and admin API)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from harbourgate.app import prepare
    from harbourgate.audit.log import AuditLog
    from harbourgate.audit.sequencer import ENV as SEQUENCER_ENV
    from harbourgate.audit.sequencer import Sequencer
    from harbourgate.observe import logs, telemetry
    from harbourgate.server import BoundedProtocol
    from harbourgate.store import Store

    settings = load_settings(config_path)
    host = host or settings.server.host
    port = settings.server.port if port is None else port
    workers = workers or settings.server.workers
    try:
        telemetry.check_available(settings.telemetry)
    except telemetry.TelemetryUnavailable as exc:
        raise InputError(str(exc)) from None
    try:
        banner = prepare(settings)
    except Exception as exc:  # storage unreachable, unwritable data dir, ...
        raise InputError(f"cannot start: {exc}") from exc
    sock = bind(host, port)
    port = sock.getsockname()[1]
    os.environ["HARBOURGATE_CONFIG_FILE"] = str(Path(config_path).resolve()) if config_path else ""
    metrics_dir = None
    sequencer = store = None
    if workers > 1:  # private to this server (mode 0700), removed when it stops
        metrics_dir = tempfile.mkdtemp(prefix="harbourgate-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        try:  # the one appender of every worker's audit entries (audit.sequencer)
            store = Store(settings.effective_database_url)
            sequencer = Sequencer(AuditLog.open(settings, store))
            sequencer.start()
        except Exception as exc:
            if sequencer is not None:
                sequencer.close()  # removes its folder
            if store is not None:
                store.close()
            shutil.rmtree(metrics_dir, ignore_errors=True)
            sock.close()
            raise InputError(f"cannot start the audit sequencer: {exc}") from exc
        os.environ[SEQUENCER_ENV] = sequencer.path
    else:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        os.environ.pop(SEQUENCER_ENV, None)
    for line in banner:
        click.echo(line)
    click.echo(f"Harbourgate listening on http://{host}:{port} ({workers} worker"
               f"{'s' if workers > 1 else ''}); OpenAI base_url http://{host}:{port}/v1, "
               f"Anthropic base_url http://{host}:{port}")
    config = uvicorn.Config(
        "harbourgate.app:create_app_from_env", factory=True, host=host, port=port,
        workers=workers, loop="uvloop", http=BoundedProtocol, access_log=False,
        log_config=logs.uvicorn_log_config(settings.logging), lifespan="on",
        timeout_graceful_shutdown=10, proxy_headers=False, server_header=False)
    server = uvicorn.Server(config)
    try:
        if workers > 1:
            # uvicorn < 0.40 takes the worker's target; later versions build it themselves
            takes_target = "target" in inspect.signature(Multiprocess).parameters
            extra = {"target": server.run} if takes_target else {}
            Multiprocess(config, sockets=[sock], **extra).run()
        else:
            server.run(sockets=[sock])
    finally:
        sock.close()
        if sequencer is not None and store is not None:
            sequencer.close()  # the workers are gone: commit what they sent, sign
            store.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@click.command("stand-in")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=9100, show_default=True)
@click.option("--latency-ms", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Delay before each answer (before the first event of a stream).")
@click.option("--fail-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Fraction of requests answered with HTTP 500 (deterministic).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the deterministic failure sequence.")
@click.option("--max-concurrency", type=click.IntRange(1), default=None,
              help="Answer 429 (Retry-After: 1) to generation requests beyond N at once, "
                   "as an overloaded inference server does.")
@click.option("--model-id", default=None,
              help="Serve only this model id; others get vLLM's 404 'model does not exist'.")
def stand_in(host: str, port: int, latency_ms: float, fail_rate: float, seed: int,
             max_concurrency: int | None, model_id: str | None) -> None:
    """A local OpenAI- and Anthropic-compatible stand-in provider.

    Like a vLLM server, it also answers GET /health and GET /metrics (vLLM's
    vllm:num_requests_running and vllm:num_requests_waiting), so several of them can
    form a pool (a route with endpoints:).
    """
    from harbourgate.providers.standin import capacity

    limit = f", max concurrency {max_concurrency}" if max_concurrency else ""
    click.echo(f"stand-in provider on http://{host}:{port} (OpenAI base_url "
               f"http://{host}:{port}/v1, Anthropic base_url http://{host}:{port}); "
               f"latency {latency_ms:g} ms, fail rate {fail_rate:g}{limit}")
    capacity.run(host, port, latency_ms=latency_ms, fail_rate=fail_rate, seed=seed,
                 max_concurrency=max_concurrency, model_id=model_id)
