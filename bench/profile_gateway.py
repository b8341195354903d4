"""Where the gateway's CPU goes: py-spy samples one worker under load, full pipeline.

    .venv/bin/python bench/profile_gateway.py [--seconds 15] [--concurrency 16] [--stream]

Starts the stand-in and `harbourgate serve` exactly as `bench/run` does (key, attestation,
the four packs, a ~2 KB mixed English/Chinese prompt that the cross-border pack
pseudonymises, group-commit audit), drives it with bench/loadgen.py, and records the
worker with py-spy (`pip install py-spy`). Writes bench/profiles/<name>.txt: self time
and total time by function, the heaviest first, and the collapsed stacks beside it
(`.folded`, for flame graphs). Bounded: a fixed duration, 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # bench/compare.py: the same deployment bench/run measures

OUT = Path(__file__).resolve().parent / "profiles"


def summarise(folded: Path, top: int = 40) -> str:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        frames = [f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].rstrip(")")
                  for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    lines = [f"{samples} samples", "", "self %  function (file:line)"]
    lines += [f"{100 * n / samples:6.1f}  {f}" for f, n in own.most_common(top)]
    lines += ["", "total % function (file:line)"]
    lines += [f"{100 * n / samples:6.1f}  {f}" for f, n in total.most_common(top)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    work = Path(tempfile.mkdtemp(prefix="hg-profile-"))
    compare.snapshot_source(work, None)
    fleet = compare.Fleet(work)
    try:
        direct = compare.start_standin(fleet)
        hg = compare.start_harbourgate(fleet, work / "hg", direct.info["base"], workers=1)
        body = work / "body.json"
        body.write_text(compare.json.dumps(compare.chat_body(args.stream)))
        load = subprocess.Popen(
            [sys.executable, str(compare.BENCH / "loadgen.py"), *hg.urls(), "--concurrency",
             str(args.concurrency), "--requests", "10000000", "--body-file", str(body),
             "--max-seconds", str(args.seconds + 4)]
            + [a for h in hg.headers for a in ("--header", h)]
            + (["--stream"] if args.stream else []),
            stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        name = args.name or f"gateway-c{args.concurrency}{'-stream' if args.stream else ''}"
        OUT.mkdir(exist_ok=True)
        folded = OUT / f"{name}.folded"
        subprocess.run([spy, "record", "--pid", str(hg.pids[0]), "--duration",
                        str(int(args.seconds)), "--rate", "250", "--format", "raw",
                        "--output", str(folded), "--nonblocking"], check=True,
                       capture_output=True)
        result = load.communicate(timeout=60)[0]
        summary = summarise(folded)
        (OUT / f"{name}.txt").write_text(
            f"bench/profile_gateway.py --seconds {args.seconds:g} --concurrency {args.concurrency}"
            f"{' --stream' if args.stream else ''}\nload: {result.strip()}\n\n{summary}")
        print(summary[:3000])
    finally:
        fleet.close()


if __name__ == "__main__":
    main()
