"""Two `reslearn train` jobs at once on one machine, before and after the thread policy
(issue 13). Run it on an otherwise idle machine.

For each variant, one job alone, then two identical jobs started together; each job's
training rate is the img/s of its metrics row (training time only, evaluation excluded).
Variants: "all cores each" (`--threads` = every core: what every job did before
reslearn.threads, torch's default) and "auto" (the default now: each job takes its
share of the cores and adapts when the other starts or ends).

Usage: RESLEARN_DATA_ROOT=../shared/data python benchmarks/speed/concurrent_runs.py
          [--model resnet20] [--iterations 80]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for benchmarks/originals.py
from originals import cifar10_dir  # noqa: E402  the original CIFAR-10
from reslearn.threads import cpu_count


def job(run: Path, data: Path, model: str, iterations: int, extra: list[str]) -> subprocess.Popen:
    """One `reslearn train` process. Its own register of jobs (beside the run folders):
    only the jobs of this benchmark share the machine's cores."""
    cmd = [sys.executable, "-m", "reslearn", "train", "--model", model, "--data-dir", str(data)]
    cmd += ["--no-download", "--iterations", str(iterations), "--eval-every", str(iterations)]
    cmd += ["--device", "cpu", "--progress", "none", "--no-tensorboard", "--out", str(run), *extra]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["RESLEARN_JOBS_DIR"] = str(run.parent / "jobs")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def rate(run: Path) -> float:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return rows[-1]["images_per_s"]


def together(tmp: Path, data: Path, a, n: int, extra: list[str], tag: str) -> list[float]:
    runs = [tmp / f"{tag}-{i}" for i in range(n)]
    procs = [job(r, data, a.model, a.iterations, extra) for r in runs]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"a job failed:\n{err[-2000:]}")
    return [rate(r) for r in runs]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet20")
    p.add_argument("--iterations", type=int, default=80)
    a = p.parse_args()
    data = cifar10_dir()
    cores = cpu_count()
    variants = {f"all cores each (--threads {cores}, the old default)": ["--threads", str(cores)], "auto": []}
    print(f"{a.model}, {a.iterations} iterations of batch 128 per job, {cores} cores")
    print(f"{'variant':<44}{'alone img/s':>12}{'two at once img/s':>22}{'each keeps':>18}")
    with tempfile.TemporaryDirectory() as tmp:
        together(Path(tmp), data, a, 1, ["--threads", "1"], "warm")  # decode cache, page cache
        for i, (name, extra) in enumerate(variants.items()):
            t0 = time.perf_counter()
            (solo,) = together(Path(tmp), data, a, 1, extra, f"solo{i}")
            pair = together(Path(tmp), data, a, 2, extra, f"pair{i}")
            keeps = ", ".join(f"{100 * r / solo:.0f}%" for r in pair)
            pair_s = ", ".join(f"{r:.1f}" for r in pair)
            print(f"{name:<44}{solo:>12.1f}{pair_s:>22}{keeps:>18}   ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
