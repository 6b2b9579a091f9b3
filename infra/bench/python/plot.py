"""Draws docs/bench-latency.png from the bench's CSV: CDFs of time to first event, first reply
text and end of stream, backend vs Letta direct."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

source, target = sys.argv[1], sys.argv[2]
series = {}
with open(source) as f:
    for row in csv.DictReader(f):
        series.setdefault((row["kind"], row["side"]), []).append(float(row["ms"]))

kinds = [("first_event", "first event"), ("first_text", "first reply text"), ("end", "end of stream")]
fig, axes = plt.subplots(1, 3, figsize=(13, 4))
for ax, (kind, title) in zip(axes, kinds):
    for side, label, style in [("backend", "backend", "-"), ("letta", "Letta direct", "--")]:
        values = sorted(series.get((kind, side), []))
        if values:
            ax.step(values, [(i + 1) / len(values) for i in range(len(values))], style, label=label, where="post")
    ax.set_title(f"time to {title}")
    ax.set_xlabel("ms")
    ax.set_ylabel("share of turns")
    ax.grid(alpha=0.3)
    ax.legend()
fig.tight_layout()
fig.savefig(target, dpi=110)
