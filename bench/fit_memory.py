"""Resident memory of one process over N probe trainings of the soak's CNN.

    .venv/bin/python -m bench.fit_memory [--fits 20] [--steps 20] [--release none|trim|kernel-cache]

Each fit is `workers.train.train` (Keras' state cleared before it, as in the worker); after it,
`--release` tries one more way of giving memory back: `trim` is glibc's malloc_trim(0) after a
gc (fragmentation), `kernel-cache` clears TensorFlow's eager kernel cache. Run it with
MALLOC_ARENA_MAX=2 to try fewer malloc arenas. Prints the RSS after each fit and the growth per
fit after the fifth.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import time
from pathlib import Path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fits", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--release", choices=("none", "trim", "kernel-cache"), default="none")
    args = parser.parse_args()

    from bench.soak import small_run
    from service.schemas.run import RunSpec
    from tests.fashion import sample
    from workers.data import from_sample
    from workers.train import train

    x, y = sample(n=256)
    data = from_sample(x / 255.0, y, cap=256)
    run = RunSpec.model_validate(small_run("unused"))
    rss = []
    for i in range(args.fits):
        started = time.perf_counter()
        train(run, data, args.steps, i % 3, eval_every=10, keep_weights=True)
        if args.release == "trim":
            gc.collect()
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        elif args.release == "kernel-cache":
            from tensorflow.python.eager import context

            context.context().clear_kernel_cache()
        rss.append(rss_mb())
        print(f"fit {i + 1}: {rss[-1]:.0f} MB, {time.perf_counter() - started:.1f} s", flush=True)
    warm = min(4, len(rss) - 1)
    per_fit = (rss[-1] - rss[warm]) / max(1, len(rss) - 1 - warm)
    print(f"release={args.release}: {rss[0]:.0f} → {rss[-1]:.0f} MB, {per_fit:.1f} MB per fit")


if __name__ == "__main__":
    main()
