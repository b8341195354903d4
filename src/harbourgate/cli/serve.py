"""`harbourgate serve` and `harbourgate stand-in`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from harbourgate.cli.common import InputError, load_settings


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

    from harbourgate.app import prepare
    from harbourgate.server import BoundedProtocol

    settings = load_settings(config_path)
    host = host or settings.server.host
    port = settings.server.port if port is None else port
    workers = workers or settings.server.workers
    try:
        banner = prepare(settings)
    except Exception as exc:  # storage unreachable, unwritable data dir, ...
        raise InputError(f"cannot start: {exc}") from exc
    os.environ["HARBOURGATE_CONFIG_FILE"] = str(Path(config_path).resolve()) if config_path else ""
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="harbourgate-metrics-")
    for line in banner:
        click.echo(line)
    click.echo(f"Harbourgate listening on http://{host}:{port} ({workers} worker"
               f"{'s' if workers > 1 else ''}); OpenAI base_url http://{host}:{port}/v1, "
               f"Anthropic base_url http://{host}:{port}")
    uvicorn.run("harbourgate.app:create_app_from_env", factory=True, host=host, port=port,
                workers=workers, loop="uvloop", http=BoundedProtocol, access_log=False,
                log_level="warning", lifespan="on", timeout_graceful_shutdown=10,
                proxy_headers=False, server_header=False)


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
