"""A load generator in its own process (neither the gateway nor the upstream).

    python bench/loadgen.py URL --concurrency 16 --requests 5000 [--header K:V] [--body JSON]

Keeps `--concurrency` requests in flight over pooled keep-alive connections until
`--requests` have completed (bounded in count, and in time by --max-seconds), and prints
one JSON object: throughput, latency percentiles, errors, and the loadgen's own CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time

import aiohttp


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


async def run(url: str, headers: dict[str, str], body: bytes, concurrency: int, total: int,
              max_seconds: float, stream: bool) -> dict[str, object]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    issued = 0
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal issued
            while issued < total and time.perf_counter() < deadline:
                issued += 1
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as r:
                        if stream:
                            async for _ in r.content.iter_any():
                                pass
                        else:
                            await r.read()
                        if r.status != 200:
                            errors[str(r.status)] = errors.get(str(r.status), 0) + 1
                            continue
                except aiohttp.ClientError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append(time.perf_counter() - t0)

        deadline = time.perf_counter() + max_seconds
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "requests": len(latencies), "errors": errors, "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "p999_ms": percentile(latencies, 0.999) * 1000,
        "loadgen_cpu_s": usage.ru_utime + usage.ru_stime,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--body", default="{}")
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    headers = {"content-type": "application/json"}
    for item in args.header:
        k, _, v = item.partition(":")
        headers[k.strip()] = v.strip()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args.url, headers, args.body.encode(), args.concurrency,
                             args.requests, args.max_seconds, args.stream))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
