"""Scale-out: processing and fan-out with 1 worker process and with 2, and the ratio.

``python -m bench.scale [--quick]``

Runs ``bench.processing --workers N`` and ``bench.fanout --workers N`` for N = 1 and 2,
each in a process of its own as they are run by hand, and reads their printed figures:
activities/s and worker CPU per activity; deliveries/s, the time to the last delivery
and worker CPU per delivery. The ratio 2 / 1 says whether a second ``kith worker`` adds
throughput (above 1) or only contention (below 1). Each run prints its own full report
too, with the machine and its load.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

from bench.common import bench_env

# What each benchmark prints, read back: (figure, regular expression on its output).
FIGURES = {
    "bench.processing": [
        ("activities/s", r"Kith worker\s+([\d.]+) activities/s"),
        ("worker CPU ms/activity", r"worker CPU ([\d.]+) ms"),
    ],
    "bench.fanout": [
        ("deliveries/s", r"Kith worker\s+([\d.]+) deliveries/s"),
        ("last delivery s", r"last one ([\d.]+) s after go"),
        ("worker CPU ms/delivery", r"\(([\d.]+) ms a delivery\)"),
    ],
}


def figures(module: str, args: list[str]) -> dict[str, float]:
    """Run one benchmark and read its figures (NaN for one it did not print)."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args], env=bench_env(), capture_output=True, text=True, timeout=3600
    )
    sys.stdout.write(done.stdout)
    sys.stdout.flush()
    found = {}
    for name, pattern in FIGURES[module]:
        match = re.search(pattern, done.stdout)
        found[name] = float(match.group(1)) if match else float("nan")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: checks it runs, not the figures")
    args = parser.parse_args(argv)
    sizes = {
        "bench.processing": ["--activities", "300"] if args.quick else [],
        "bench.fanout": ["--servers", "500"] if args.quick else [],
    }
    summary = []
    for module, size in sizes.items():
        one = figures(module, [*size, "--workers", "1"])
        two = figures(module, [*size, "--workers", "2"])
        for name in one:
            ratio = two[name] / one[name] if one[name] else float("nan")
            summary.append(
                f"{module:<17} {name:<24} 1 process {one[name]:>9.2f}   2 processes {two[name]:>9.2f}   2/1 {ratio:.2f}"
            )
    print("\n== Scale-out (bench.scale): 2 worker processes against 1 ==")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
