"""The side-by-side benchmark as one PNG: throughput, latency and scaling.

    .venv/bin/python bench/plot.py bench/results/compare-YYYYmmdd-HHMMSS.json [OUT.png]

`bench/compare.py` calls `render` after a full run; this command redraws a saved run.
Throughput and latency use log scales, because LiteLLM and the direct call differ by
two orders of magnitude and a linear axis would flatten one of them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the headless backend

STYLE = {"direct": ("direct call", "#7f7f7f", "s"),
         "harbourgate": ("Harbourgate", "#1f77b4", "o"),
         "litellm": ("LiteLLM proxy", "#d62728", "^")}


def _series(report: dict[str, Any], stream: bool, name: str, key: str
            ) -> tuple[list[int], list[float]]:
    points = sorted((lv["concurrency"], lv["results"][name][key])
                    for lv in report["levels"].values()
                    if lv["stream"] is stream and name in lv["results"])
    return [c for c, _ in points], [v for _, v in points]


def render(report: dict[str, Any], out: Path) -> None:
    """Throughput and p50/p99 by concurrency (plain row, streaming row), then scaling bars."""
    scaling = report.get("scaling") or []
    fig = plt.figure(figsize=(15, 12.5 if scaling else 8.5))
    grid = fig.add_gridspec(3 if scaling else 2, 3)
    for row, stream in enumerate((False, True)):
        mode = "streaming" if stream else "plain"
        panels = [(fig.add_subplot(grid[row, i]), key, title, unit) for i, (key, title, unit)
                  in enumerate((("rps", "throughput", "requests/s"),
                                ("p50_ms", "latency p50", "ms"),
                                ("p99_ms", "latency p99", "ms")))]
        for ax, key, title, unit in panels:
            for name, (label, colour, marker) in STYLE.items():
                xs, ys = _series(report, stream, name, key)
                if xs:
                    ax.plot(xs, ys, marker=marker, color=colour, label=label)
            ax.set_title(f"{title}, {mode}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("concurrency")
            ax.set_ylabel(unit)
            ax.grid(True, which="both", alpha=0.3)
        panels[0][0].legend()
    if scaling:
        _scaling(scaling, fig.add_subplot(grid[2, :]))
    env = report["environment"]
    fig.suptitle(f"Harbourgate vs LiteLLM proxy {env.get('litellm', '')} vs the direct call, "
                 f"{env['workers']} worker each; {env['cores']} cores, {env['date']}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)


def _scaling(rows: list[dict[str, Any]], ax: Any) -> None:
    labels = [r["label"].replace("Harbourgate, ", "HG ").replace("PostgreSQL + Redis", "PG+Redis")
              .replace(" x 1 worker", "") for r in rows]
    values = [r["result"]["rps"] for r in rows]
    colours = [STYLE.get(r["name"], ("", "#7f7f7f", ""))[1] for r in rows]
    bars = ax.barh(labels, values, color=colours)
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel(f"requests/s, plain, concurrency {rows[0]['concurrency']}")
    ax.set_title("scaling: worker processes and replicas")


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    report = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2]) if len(sys.argv) == 3 else (
        Path(__file__).resolve().parent.parent / "docs" / "img" / "benchmarks.png")
    render(report, out)
    print(out)


if __name__ == "__main__":
    main()
