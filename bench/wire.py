"""The upstream call alone: aiohttp's ClientSession against Harbourgate's own client
(`harbourgate.providers.wire`), interleaved in one run against one stand-in.

    .venv/bin/python bench/wire.py [--requests 3000] [--rounds 3]

Each round POSTs the bench's ~2 KB chat request to `harbourgate stand-in` (another
process, 127.0.0.1) one at a time and reads the JSON answer, with each client in turn, on
uvloop as `harbourgate serve` runs. Prints CPU and wall microseconds per request of this
process (the client's side only: the stand-in's CPU is not counted).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # bench/compare.py: the same prompt bench/run sends

from harbourgate.providers import wire


async def run(url: str, requests: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    body = orjson.dumps({**compare.chat_body(False), "model": "fable-5"})
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024))
    client = wire.Client()

    async def with_aiohttp() -> None:
        async with session.post(url, data=body, headers=headers) as response:
            orjson.loads(await response.read())

    async def with_wire() -> None:
        response = await client.request("POST", url, headers, body)
        try:
            orjson.loads(b"".join([chunk async for chunk in response.chunks()]))
        finally:
            response.release()

    results: dict[str, list[tuple[float, float]]] = {"aiohttp": [], "wire": []}
    try:
        for _ in range(rounds):
            for name, call in (("aiohttp", with_aiohttp), ("wire", with_wire)):
                for _ in range(200):
                    await call()
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(requests):
                    await call()
                results[name].append(((time.process_time() - cpu) / requests,
                                      (time.perf_counter() - wall) / requests))
    finally:
        await session.close()
        await client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = compare.free_port()
    standin = subprocess.Popen([sys.executable, "-m", "harbourgate", "stand-in", "--port",
                                str(port)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        results = uvloop.run(run(url, args.requests, args.rounds))
    finally:
        standin.terminate()
        standin.wait()
    print(f"{args.requests} requests x {args.rounds} rounds, interleaved; median of rounds")
    print("| client | CPU µs/request | wall µs/request |")
    print("|---|---|---|")
    for name, figures in results.items():
        print(f"| {name} | {statistics.median(c for c, _ in figures) * 1e6:.1f} | "
              f"{statistics.median(w for _, w in figures) * 1e6:.1f} |")


if __name__ == "__main__":
    main()
