"""Compiled engines weighed for the hot path, each against what Harbourgate uses, in one run.

    .venv/bin/python bench/engines.py [--requests 6000] [--rounds 3]

1. The HTTP server: the same bare ASGI app (reads the body, answers 1.2 KB of JSON) under
   uvicorn with httptools on uvloop (what `harbourgate serve` runs) and under granian's
   ASGI interface (Rust, `--loop uvloop`), one worker each, driven in interleaved rounds by
   bench/loadgen.py at concurrency 1 and 64. CPU is the server's whole process tree.
2. The privacy scanner's first pass: the scanner's one master regex (`re`) against a
   hyperscan database of the same shapes compiled in prefilter mode (hyperscan has no
   look-behinds, so it can only propose candidates that `re` must confirm), on the ~2 KB
   mixed English/Chinese prompt bench/run sends; and the whole scan (`find_all`) for scale.

Both alternatives come with the bench extra (`pip install -e '.[bench]'`). The figures
decide: docs/benchmarks.md keeps them under "Engines weighed".
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # bench/compare.py: processes, load generator, the prompt

APP = '''
import orjson
BODY = orjson.dumps({"id": "x", "object": "chat.completion",
                     "choices": [{"message": {"role": "assistant", "content": "ok " * 380}}]})
HEAD = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            done = message["type"].replace(".startup", ".startup.complete").replace(
                ".shutdown", ".shutdown.complete")
            await send({"type": done})
            if message["type"] == "lifespan.shutdown":
                return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEAD})
    await send({"type": "http.response.body", "body": BODY})
'''


def servers(requests: int, rounds: int) -> list[str]:
    work = Path(tempfile.mkdtemp(prefix="hg-engines-"))
    (work / "bare_app.py").write_text(APP)
    body = work / "body.json"
    body.write_text(json.dumps(compare.chat_body(False), ensure_ascii=False))
    py = sys.executable
    argvs = {
        "uvicorn + httptools": [py, "-m", "uvicorn", "bare_app:app", "--loop", "uvloop",
                                "--http", "httptools", "--no-access-log", "--log-level",
                                "warning", "--port"],
        "granian (ASGI)": [py, "-m", "granian", "--interface", "asgi", "--loop", "uvloop",
                           "--workers", "1", "--no-ws", "--log-level", "warning",
                           "bare_app:app", "--port"],
    }
    fleet = compare.Fleet(work)
    lines = ["| server | concurrency | req/s | p50 ms | CPU µs/request |", "|---|---|---|---|---|"]
    try:
        targets = []
        for name, argv in argvs.items():
            port = compare.free_port()
            proc = fleet.start(name.split()[0], [*argv, str(port)], f"http://127.0.0.1:{port}/",
                               cwd=work)
            targets.append(compare.Target(name, [f"http://127.0.0.1:{port}/v1"],
                                          pids=[proc.pid]))
        plain = compare.VARIANTS[0]  # POST /v1/chat/completions, not streamed
        for concurrency in (1, 64):
            tallies = {t.name: compare.Tally() for t in targets}
            for _ in range(rounds):
                for t in targets:
                    cpu = compare.cpu_seconds(t.pids)
                    out = compare.loadgen(t, plain, body, concurrency=concurrency,
                                          requests=requests // rounds, max_seconds=60)
                    tallies[t.name].add(out, compare.cpu_seconds(t.pids) - cpu, 0.0, None)
            for t in targets:
                r = tallies[t.name].result(t)
                lines.append(f"| {t.name} | {concurrency} | {r['rps']:,.0f} | "
                             f"{r['p50_ms']:.3f} | {r['cpu_ms_per_req'] * 1000:.1f} |")
    finally:
        fleet.close()
    return lines


def scanner(repeat: int = 3000) -> list[str]:
    import hyperscan

    from harbourgate.privacy import recognizers

    texts = [m["content"] for m in compare.chat_body(False)["messages"]]
    data = [t.encode() for t in texts]
    patterns = []
    for _, first, _, rest in recognizers._SHAPES:
        pattern = f"[{first}]" + re.sub(r"\(\?P<[a-z_]+>", "(?:", rest)
        pattern = re.sub(r"\\u([0-9a-fA-F]{4})", r"\\x{\1}", pattern)  # its escapes
        patterns.append("".join(c if ord(c) < 128 else f"\\x{{{ord(c):x}}}"
                                for c in pattern).encode())
    db = hyperscan.Database()
    db.compile(expressions=patterns, ids=list(range(len(patterns))), elements=len(patterns),
               flags=[hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_UTF8
                      | hyperscan.HS_FLAG_ALLOWEMPTY] * len(patterns))
    hits: list[int] = []

    def on_match(ident: int, start: int, end: int, flags: int, context: object) -> None:
        hits.append(end)

    def with_hyperscan() -> None:
        hits.clear()
        for d in data:
            db.scan(d, match_event_handler=on_match)

    def with_re() -> None:
        for t in texts:
            list(recognizers.MASTER.finditer(t))

    def whole_scan() -> None:
        for t in texts:
            recognizers.find_all(t)

    size = sum(map(len, data))
    lines = [f"| first pass over the {size:,}-byte prompt | µs | MB/s |", "|---|---|---|"]
    for name, run in (("hyperscan, prefilter mode (candidates only)", with_hyperscan),
                      ("re, the scanner's master pattern", with_re),
                      ("the whole scan (re + validation), for scale", whole_scan)):
        run()
        cpu = time.process_time()
        for _ in range(repeat):
            run()
        seconds = (time.process_time() - cpu) / repeat
        lines.append(f"| {name} | {seconds * 1e6:.1f} | {size / seconds / 1e6:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("\n".join(servers(args.requests, args.rounds)))
    print()
    print("\n".join(scanner()))


if __name__ == "__main__":
    main()
