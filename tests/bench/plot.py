"""Draws `make soak`'s minutes as a PNG: python tests/bench/plot.py RESULT.json OUT.png

Runs in .venv-plot (matplotlib), apart from the product's venv. Four panels over the minutes:
throughput of each load as a share of its first full minute, p95 latency per load, and what
PostgreSQL did (WAL written, checkpoints, autovacuum seconds, pending-list merges).
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the backend

LOADS = {"ingest": "ingestion", "moves": "moves", "detail": "incident detail", "typeahead": "typeahead"}


def main(source: str, target: str) -> None:
    with open(source) as f:
        result = json.load(f)
    rows = result["rows"]
    minutes = [r["minute"] for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(11, 10), sharex=True, constrained_layout=True)
    fig.suptitle(f"make soak, {result['scale']} scale, {result['started']}: {len(rows)} minutes")

    ax = axes[0]
    for name, label in LOADS.items():
        first = rows[0]["loads"][name]["per_s"] or 1
        ax.plot(minutes, [r["loads"][name]["per_s"] / first * 100 for r in rows], marker="o", label=label)
    ax.axhline(80, color="grey", linestyle="--", linewidth=1, label="target floor (80%)")
    ax.set_ylabel("throughput, % of minute 1")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower left", ncol=3, fontsize="small")

    ax = axes[1]
    for n, (name, label) in enumerate(LOADS.items()):
        color = f"C{n}"
        ax.plot(minutes, [r["loads"][name]["p95_ms"] for r in rows], marker="o", color=color, label=f"{label} p95")
        ax.plot(minutes, [r["loads"][name]["p99_ms"] for r in rows], linestyle="--", color=color, linewidth=1)
    ax.set_ylabel("p95 (dashed: p99), ms (log)")
    ax.set_yscale("log")
    ax.legend(loc="upper left", ncol=2, fontsize="small")

    ax = axes[2]
    pg = [r["postgres"] for r in rows]
    ax.bar(minutes, [p["wal_mb"] for p in pg], color="#c8d6e5", label="WAL written, MB")
    ax.set_ylabel("WAL, MB")
    ax.set_xlabel("minute")
    twin = ax.twinx()
    twin.plot(minutes, [sum(p["vacuum_seconds"].values()) for p in pg], color="#e17055", marker="s", label="vacuum, s")
    twin.plot(minutes, [sum(p["gin_merges"].values()) for p in pg], color="#6c5ce7", marker="^", label="GIN merges")
    twin.set_ylabel("vacuum seconds, merges")
    twin.set_ylim(bottom=0)
    for minute, p in zip(minutes, pg, strict=True):
        if p["checkpoints"]:
            ax.axvline(minute, color="black", linestyle=":", linewidth=1)
            ax.annotate("checkpoint", (minute, 0), rotation=90, fontsize="x-small", va="bottom")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize="small")
    ax.set_xticks(minutes)
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
