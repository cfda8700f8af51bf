#!/usr/bin/env python3
"""Executed instructions and stall samples per phase of the cluster kernel, from an Nsight Compute source page.

    ncu_phase_counts.py WARPS FILE.csv [FILE.csv ...]

FILE.csv: `ncu -i REPORT --page source --csv --print-source sass` of one cluster-kernel launch (what
`scripts/gpu_check.sh ncu-cluster`, `ncu-old-new` and `cs-final` write as ncu_*_sass.csv). WARPS: the launch's warps
(CTAs x 16), to give counts per warp. The kernel's trace stamps (clock reads, present in the SASS even when tracing
is off) split the SASS into phases, in this order: start, metadata, weight issue, PDL wait, x / y, shrink, push +
wait, v sum, expand, store and the rest. Prints one line per file: instructions per warp / stall samples of each."""
import csv
import sys

PHASES = ["start", "", "metadata", "issue A/B", "pdl wait", "x/y", "shrink", "push+wait", "v sum", "expand"]


def phases(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = next(i for i, r in enumerate(rows) if "Source" in r and "Instructions Executed" in r)
    cols = rows[header]
    src, ins, smp = cols.index("Source"), cols.index("Instructions Executed"), cols.index(
        "Warp Stall Sampling (All Samples)")
    out = [[0, 0]]
    for r in rows[header + 1:]:
        if len(r) <= max(src, ins, smp):
            continue
        if "SR_CLOCKLO" in r[src] or "SR_GLOBALTIMERLO" in r[src]:
            out.append([0, 0])
        for k, c in ((0, ins), (1, smp)):
            v = r[c].replace(",", "")
            out[-1][k] += int(v) if v.isdigit() else 0
    return out


def main(argv):
    if len(argv) < 2 or not argv[0].isdigit():
        sys.exit(__doc__)
    warps = int(argv[0])
    for path in argv[1:]:
        segs = phases(path)
        names = PHASES + ["rest"] * max(0, len(segs) - len(PHASES))
        cells = [f"{n or '-'} {i / warps:.0f}/{s}" for n, (i, s) in zip(names, segs) if i or s]
        print(f"{path}: " + " | ".join(cells) + f" | total {sum(i for i, _ in segs) / warps:.0f} per warp")


if __name__ == "__main__":
    main(sys.argv[1:])
