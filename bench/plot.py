"""The side-by-side benchmark as one PNG: throughput, latency, the variants and scaling.

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

STYLE = {"direct": ("direct call", "#7f7f7f", "s", "-"),
         "harbourgate": ("Harbourgate", "#1f77b4", "o", "-"),
         "harbourgate-base": ("Harbourgate baseline", "#9ecae1", "o", "--"),
         "forwarder": ("bare forwarder (aiohttp)", "#2ca02c", "v", ":"),
         "forwarder-wire": ("bare forwarder (Harbourgate's client)", "#98df8a", "v", ":"),
         "litellm": ("LiteLLM proxy", "#d62728", "^", "-")}
VARIANT_LETTERS = {"plain": "(a) PII, plain", "clean": "(b) no PII, plain",
                   "stream": "(c) PII, stream", "responses": "(d) PII, Responses stream"}


def _variant(level: dict[str, Any]) -> str:
    """A level's variant (runs before variants existed: plain or stream)."""
    return str(level.get("variant") or ("stream" if level["stream"] else "plain"))


def _series(report: dict[str, Any], variant: str, name: str, key: str
            ) -> tuple[list[int], list[float]]:
    points = sorted((lv["concurrency"], lv["results"][name][key])
                    for lv in report["levels"].values()
                    if _variant(lv) == variant and name in lv["results"])
    return [c for c, _ in points], [v for _, v in points]


def _label(report: dict[str, Any], name: str) -> str:
    if name == "harbourgate-base":
        return str(report.get("labels", {}).get(name, STYLE[name][0]))
    return STYLE[name][0]


def render(report: dict[str, Any], out: Path) -> None:
    """Throughput and p50/p99 by concurrency for (a) and (c); the four variants at
    concurrency 64 and req/s by worker count; then every scaling row."""
    scaling = report.get("scaling") or []
    fig = plt.figure(figsize=(15, 17 if scaling else 13), layout="constrained")
    top, bottom = (fig.subfigures(2, 1, height_ratios=[3, 1.2]) if scaling
                   else (fig.subfigures(1, 1), None))
    grid = top.add_gridspec(3, 3)
    for row, variant in enumerate(("plain", "stream")):
        for i, (key, title, unit) in enumerate((("rps", "throughput", "requests/s"),
                                                ("p50_ms", "latency p50", "ms"),
                                                ("p99_ms", "latency p99", "ms"))):
            ax = top.add_subplot(grid[row, i])
            for name, (_, colour, marker, line) in STYLE.items():
                xs, ys = _series(report, variant, name, key)
                if xs:
                    ax.plot(xs, ys, marker=marker, color=colour, linestyle=line,
                            label=_label(report, name))
            ax.set_title(f"{title}, {VARIANT_LETTERS[variant]}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("concurrency")
            ax.set_ylabel(unit)
            ax.grid(True, which="both", alpha=0.3)
            if row == i == 0:  # one legend for the figure: the same colours throughout
                top.legend(*ax.get_legend_handles_labels(), loc="outside upper center",
                           ncol=3)
    _variants(report, top.add_subplot(grid[2, :2]))
    if scaling and bottom is not None:
        _workers(scaling, top.add_subplot(grid[2, 2]))
        _scaling(scaling, bottom.add_subplot())
    env = report["environment"]
    fig.suptitle(f"Harbourgate vs LiteLLM proxy {env.get('litellm', '')}, two bare "
                 f"forwarders and the direct call, {env['workers']} worker each; "
                 f"{env['cores']} cores, {env['date']}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)


def _variants(report: dict[str, Any], ax: Any) -> None:
    """req/s of every target for each variant at concurrency 64, grouped bars."""
    levels = {_variant(lv): lv["results"] for lv in report["levels"].values()
              if lv["concurrency"] == 64}
    variants = [v for v in VARIANT_LETTERS if v in levels]
    names = [n for n in STYLE if any(n in levels[v] for v in variants)]
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        xs = [j + (i - (len(names) - 1) / 2) * width for j, v in enumerate(variants)
              if name in levels[v]]
        ys = [levels[v][name]["rps"] for v in variants if name in levels[v]]
        bars = ax.bar(xs, ys, width, color=STYLE[name][1], label=_label(report, name))
        ax.bar_label(bars, labels=[f"{y:,.0f}" for y in ys], fontsize=7, padding=2)
    ax.set_xticks(range(len(variants)), [VARIANT_LETTERS[v] for v in variants])
    ax.set_yscale("log")
    ax.set_ylabel("requests/s")
    ax.set_title("the request variants at concurrency 64")


def _workers(rows: list[dict[str, Any]], ax: Any) -> None:
    """Harbourgate req/s by worker count, per storage, against linear scaling."""
    ax.set_title("scaling by workers (dotted: linear)")
    for group, colour in (("SQLite", "#1f77b4"), ("PostgreSQL + Redis", "#2ca02c")):
        points = sorted((r["workers"], r["result"]["rps"]) for r in rows
                        if r.get("group") == group and r.get("replicas", 1) == 1)
        if not points:
            ax.text(0.5, 0.5 if group == "SQLite" else 0.4, f"{group}: not measured",
                    transform=ax.transAxes, ha="center")
            continue
        xs, ys = [w for w, _ in points], [v for _, v in points]
        ax.plot(xs, ys, marker="o", color=colour, label=group)
        if xs[0] == 1:
            ax.plot(xs, [ys[0] * w for w in xs], color=colour, linestyle=":", alpha=0.6,
                    label=f"{group}, linear")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("worker processes")
    ax.set_ylabel("requests/s")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _scaling(rows: list[dict[str, Any]], ax: Any) -> None:
    labels = [r["label"].replace("Harbourgate, ", "HG ").replace("PostgreSQL + Redis", "PG+Redis")
              .replace(" x 1 worker", "") for r in rows]
    values = [r["result"]["rps"] for r in rows]
    colours = [STYLE.get(r["name"], ("", "#7f7f7f"))[1] for r in rows]
    bars = ax.barh(labels, values, color=colours)
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel(f"requests/s, (a) plain, concurrency {rows[0]['concurrency']}")
    ax.set_title("scaling: worker processes, replicas, pool, observability")


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
