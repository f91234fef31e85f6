#!/usr/bin/env python3
"""Sums fuzz/runs.csv per target into the README's fuzzing table (Markdown on stdout): runs,
CPU minutes in all and in the longest single run, executions, the latest coverage and corpus
size, and crash files found.

    python3 fuzz/summary.py
"""
import csv
import os
from collections import OrderedDict

TARGETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_targets")
RUNS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs.csv")


def main():
    totals = OrderedDict((name[:-3], None) for name in sorted(os.listdir(TARGETS)) if name.endswith(".rs"))
    with open(RUNS) as runs:
        for row in csv.DictReader(runs):
            total = totals.get(row["target"]) or {"runs": 0, "cpu": 0, "longest": 0, "executions": 0, "crashes": 0}
            total["runs"] += 1
            cpu = int(row.get("cpu_seconds") or 0)
            total["cpu"] += cpu
            total["longest"] = max(total["longest"], cpu)
            total["executions"] += int(row["executions"])
            total["crashes"] += int(row["crash_files"])
            total["coverage"], total["corpus"] = row["coverage_edges"], row["corpus_files"]
            totals[row["target"]] = total
    print("| target | runs | CPU minutes | longest run (CPU min) | executions | coverage (edges) | corpus files | crash files |")
    print("|---|---|---|---|---|---|---|---|")
    for target, total in totals.items():
        if total is None:
            print(f"| `{target}` | 0 | 0 | 0 | 0 | — | — | — |")
            continue
        print(f"| `{target}` | {total['runs']} | {total['cpu'] / 60:.1f} | {total['longest'] / 60:.1f} | {total['executions']:,} | {total['coverage']} | {total['corpus']} | {total['crashes']} |")


if __name__ == "__main__":
    main()
