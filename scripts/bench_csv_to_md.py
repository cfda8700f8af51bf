#!/usr/bin/env python3
"""The markdown table of docs/perf/lora-kernels.md from a punica_bench_lora CSV (f16 rows, with the bf16 time and
ratio of the same row, and the us of an earlier run as "before").

    bench_csv_to_md.py NEW.csv [BEFORE.csv] [--shape HINxHOUT | --other]

--shape: only that projection (default 4096x4096); --other: the rows of the other shapes at B = 1 and 128 and the
prefill rows (the doc's "Other shapes" table)."""
import csv
import sys


def load(path):
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(line for line in f if not line.startswith("#"))]
    return {(r["dtype"], r["h_in"], r["h_out"], r["rank"], r["workload"], r["B"]): r for r in rows}


def num(r, k, fmt="{:.2f}"):
    v = r.get(k, "")
    try:
        return fmt.format(float(v)) if v not in ("", None) else "-"
    except ValueError:
        return "-"


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    if not args:
        sys.exit(__doc__)
    shape = "4096x4096"
    other = "--other" in argv
    if "--shape" in argv:
        shape = argv[argv.index("--shape") + 1]
        args = [a for a in args if a != shape]
    new = load(args[0])
    before = load(args[1]) if len(args) > 1 else {}
    print("| shape | r | workload | B | D | µs f16 | before | shrink | expand | GB/s | % copy | byte floor µs | "
          "FLOP floor µs | rule | f16 | µs bf16 | bf16/f16 | cuBLAS seg loop | gather+batched | dense GEMM | "
          "after GEMM |")
    print("|" + "---|" * 21)
    for key, r in new.items():
        dtype, h_in, h_out, rank, workload, b = key
        if dtype != "f16":
            continue
        sh = f"{h_in}x{h_out}"
        if other:
            if sh == "4096x4096" or (workload != "prefill" and b not in ("1", "128")) or workload not in (
                    "distinct", "identical", "prefill"):
                continue
        elif sh != shape:
            continue
        bf = new.get(("bf16",) + key[1:])
        old = before.get(key)
        ratio = f"{float(bf['us']) / float(r['us']):.3f}" if bf else "-"
        bf_cell = f"{float(bf['us']):.2f} ({'pass' if bf['pass'] == '1' else 'MISS'})" if bf else "-"
        rule = r["rule"].split()[0]
        print(f"| {sh} | {rank} | {workload} | {b} | {r['distinct']} | {float(r['us']):.2f} | "
              f"{num(old, 'us') if old else '-'} | {num(r, 'shrink_us')} | {num(r, 'expand_us')} | "
              f"{num(r, 'GBps', '{:.0f}')} | {num(r, 'pct_copy', '{:.1f}')} | {num(r, 'byte_floor_us')} | "
              f"{num(r, 'flop_floor_us')} | {rule} | {'pass' if r['pass'] == '1' else 'MISS'} | {bf_cell} | {ratio} | "
              f"{num(r, 'seg_loop_us', '{:.1f}')} | {num(r, 'batched_us', '{:.1f}')} | {num(r, 'dense_us', '{:.1f}')} | "
              f"{num(r, 'after_gemm_us')} |")


if __name__ == "__main__":
    main(sys.argv[1:])
