"""Every benchmark, one after another: ``python -m bench.all [--quick]``.

Each runs in its own process with its default sizes (``--quick``: smaller sizes for a
smoke run whose figures mean little). Prints each one's report as it goes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from bench.common import bench_env

BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("bench.transport", [], ["--requests", "500"]),
    ("bench.inbox", [], ["--requests", "1000", "--warmup", "200", "--actors", "200"]),
    (
        "bench.inbox",
        ["--database", "sqlite"],
        ["--requests", "1000", "--warmup", "200", "--actors", "200", "--database", "sqlite"],
    ),
    ("bench.processing", [], ["--activities", "200"]),
    ("bench.processing", ["--database", "sqlite"], ["--activities", "200", "--database", "sqlite"]),
    ("bench.fanout", [], ["--servers", "500"]),
    ("bench.reading", [], ["--posts", "20000", "--requests", "100"]),
    ("bench.busy", [], ["--quick"]),
    ("bench.reading", ["--database", "sqlite"], ["--posts", "20000", "--requests", "100", "--database", "sqlite"]),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the benchmarks run, not the figures")
    args = parser.parse_args(argv)
    failed = []
    for module, full, quick in BENCHMARKS:
        print(f"\n$ python -m {module} {' '.join(quick if args.quick else full)}".rstrip(), flush=True)
        code = subprocess.run(
            [sys.executable, "-m", module, *(quick if args.quick else full)], env=bench_env(), timeout=3600
        ).returncode
        if code != 0:
            failed.append(module)
    if failed:
        print(f"\nfailed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
