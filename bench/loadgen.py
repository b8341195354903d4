"""A load generator in its own process (neither the gateway nor the upstream).

    python bench/loadgen.py URL [URL ...] --concurrency 16 --requests 5000
        [--header K:V] [--body JSON | --body-file FILE] [--stream] [--warmup N] [--raw]

Keeps `--concurrency` requests in flight over pooled keep-alive connections until
`--requests` have completed (bounded in count, and in time by --max-seconds), and prints
one JSON object: throughput, latency percentiles, errors, and the loadgen's own CPU time.
With several URLs the in-flight requests are spread evenly across them (two replicas
behind a load balancer). `--warmup` requests are sent first and not counted, so opening
the connections is not measured. Streams also report the time to the first body chunk;
`--raw` adds every latency, so a caller can pool several runs before taking percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

import aiohttp


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (NaN when there are none)."""
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def summary(latencies: list[float], prefix: str = "") -> dict[str, float]:
    """p50, p99 and p99.9 in milliseconds, keyed `{prefix}p50_ms` and so on."""
    values = sorted(latencies)
    return {f"{prefix}p50_ms": percentile(values, 0.50) * 1000,
            f"{prefix}p99_ms": percentile(values, 0.99) * 1000,
            f"{prefix}p999_ms": percentile(values, 0.999) * 1000}


async def run(urls: list[str], headers: dict[str, str], body: bytes, concurrency: int,
              total: int, max_seconds: float, stream: bool, warmup: int = 0
              ) -> dict[str, object]:
    latencies: list[float] = []
    first_bytes: list[float] = []
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=max(max_seconds, 1.0))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        issued = 0

        async def one(url: str, record: bool) -> None:
            t0 = time.perf_counter()
            first = None
            try:
                async with session.post(url, data=body, headers=headers) as r:
                    if stream:
                        async for _ in r.content.iter_any():
                            if first is None:
                                first = time.perf_counter() - t0
                    else:
                        await r.read()
                    if r.status != 200:
                        if record:
                            errors[str(r.status)] = errors.get(str(r.status), 0) + 1
                        return
            except (TimeoutError, aiohttp.ClientError) as exc:
                if record:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            if record:
                latencies.append(time.perf_counter() - t0)
                if first is not None:
                    first_bytes.append(first)

        async def worker(i: int, limit: int, record: bool) -> None:
            nonlocal issued
            url = urls[i % len(urls)]
            while issued < limit and time.perf_counter() < deadline:
                issued += 1
                await one(url, record)

        deadline = time.perf_counter() + max_seconds
        if warmup:
            await asyncio.gather(*(worker(i, warmup, False) for i in range(concurrency)))
            issued = 0
        started = time.perf_counter()
        await asyncio.gather(*(worker(i, total, True) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result: dict[str, object] = {
        "requests": len(latencies), "errors": errors, "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        **summary(latencies),
        "loadgen_cpu_s": usage.ru_utime + usage.ru_stime,
        "timed_out": time.perf_counter() >= deadline,
    }
    if stream:
        result.update(summary(first_bytes, "ttfb_"))
    result["_latencies"] = latencies
    result["_first_bytes"] = first_bytes
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("urls", nargs="+", metavar="URL")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--body", default="{}")
    parser.add_argument("--body-file", type=Path, help="read the request body from a file")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--warmup", type=int, default=0, help="uncounted requests sent first")
    parser.add_argument("--raw", action="store_true", help="include every latency (seconds)")
    args = parser.parse_args()
    if args.concurrency < 1 or args.requests < 1:
        sys.exit("loadgen: --concurrency and --requests must be at least 1")
    headers = {"content-type": "application/json"}
    for item in args.header:
        k, sep, v = item.partition(":")
        if not sep:
            sys.exit(f"loadgen: --header {item!r} is not NAME: VALUE")
        headers[k.strip()] = v.strip()
    body = args.body_file.read_bytes() if args.body_file else args.body.encode()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args.urls, headers, body, args.concurrency, args.requests,
                             args.max_seconds, args.stream, args.warmup))
    raw = {"latencies_s": result.pop("_latencies"), "first_bytes_s": result.pop("_first_bytes")}
    if args.raw:
        result.update(raw)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
