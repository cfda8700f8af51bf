#!/usr/bin/env python3
"""Joins punica_bench_lora CSVs by row (dtype, shape, rank, workload, B) into one table of us per run.

    join_bench_csv.py NAME=path.csv [NAME=path.csv ...]

The first CSV gives the rows, the distinct-adapter count, the byte floor and the rule; every CSV adds its us
column ("-" where it has no such row). The last column names the fastest run and whether it meets the limit the
issue's rule sets: 4 us for a byte floor under 3 us, else the time at 70% of copy bandwidth (floor / 0.7); prefill
1.4x the larger of the byte and FLOP floors."""
import csv
import sys


def load(path):
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(line for line in f if not line.startswith("#"))]
    return {(r["dtype"], r["h_in"], r["h_out"], r["rank"], r["workload"], r["B"]): r for r in rows}


def main(argv):
    runs = [a.split("=", 1) for a in argv]
    if not runs or any(len(r) != 2 for r in runs):
        sys.exit(__doc__)
    tables = [(name, load(path)) for name, path in runs]
    first = tables[0][1]
    print("dtype shape r workload B D floor limit | " + " ".join(f"{n:>7}" for n, _ in tables) + " | best")
    for key, row in first.items():
        floor = float(row["byte_floor_us"])
        if row["workload"] == "prefill":
            limit = 1.4 * max(floor, float(row["flop_floor_us"]))
        else:
            limit = 4.0 if floor < 3.0 else floor / 0.7
        times = []
        for _, t in tables:
            r = t.get(key)
            times.append(float(r["us"]) if r else None)
        best = min((v, n) for v, (n, _) in zip(times, tables) if v is not None)
        cells = " ".join(f"{v:7.2f}" if v is not None else f"{'-':>7}" for v in times)
        mark = "pass" if best[0] <= limit else "MISS"
        print(f"{key[0]:<4} {key[1] + 'x' + key[2]:<10} {key[3]:>3} {key[4]:<9} {key[5]:>4} {row['distinct']:>3} {floor:5.2f} {limit:5.2f} | {cells} | "
              f"{best[1]} {mark}")


if __name__ == "__main__":
    main(sys.argv[1:])
