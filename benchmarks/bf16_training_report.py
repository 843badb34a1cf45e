"""The report of benchmarks/bf16_training.sh: fp32 against bf16 autocast, ResNet-20, 8 epochs.

usage: python benchmarks/bf16_training_report.py RUNS_DIR DOCS_DIR

Writes DOCS_DIR/report.md (final errors per run, the means, the gap against the seed range,
the speed), DOCS_DIR/test_error.png (test error per epoch) and copies each run's
config.json, metrics.jsonl and final.json (not the weights) to DOCS_DIR/<run>/.
"""

from __future__ import annotations

import json
import platform
import shutil
import statistics
import sys
from pathlib import Path

from reslearn.speed import kernel_key
from reslearn.train import read_metrics

AMPS = {"off": "fp32", "bf16": "bf16"}


def cpu_line() -> str:
    flags, name = set(), platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({', '.join(have) or 'no AVX2'})"


def main(runs: Path, docs: Path) -> None:
    by_amp: dict[str, list[tuple[str, dict, list[dict]]]] = {a: [] for a in AMPS}
    for rd in sorted(runs.glob("*-s*")):
        amp = rd.name.split("-s")[0]
        if amp in AMPS and (rd / "final.json").is_file():
            by_amp[amp].append((rd.name, json.loads((rd / "final.json").read_text()), read_metrics(rd)))
    docs.mkdir(parents=True, exist_ok=True)
    lines = [
        "# bf16 autocast against fp32: ResNet-20, 8 epochs (issue 18)",
        "",
        f"CPU: {cpu_line()}; 1 thread per run, two runs at a time; kernels: `{kernel_key(1)}`.",
        "Data: the shared CIFAR-10 JPEG copy (quality 75, not the original pixels), all",
        "50,000 training images, test error on the 10,000 test images. Recipe: batch 128, lr 0.1,",
        "/10 at epochs 4 and 6 (iterations 1,560 and 2,340 of 3,120), momentum 0.9, weight decay",
        "1e-4, channels_last; evaluation in fp32 for both. Made by `benchmarks/bf16_training.sh`.",
        "",
        "| run | precision | seed | final training error (%) | test error (%) | img/s (last epoch) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    summary = {}
    for amp, runs_ in by_amp.items():
        for name, _final, rows in runs_:
            last = rows[-1]
            lines.append(
                f"| {name} | {AMPS[amp]} | {name.split('-s')[1]} | {last['train_err']:.2f} | "
                f"{last['test_err']:.2f} | {last['images_per_s']:.0f} |"
            )
        if runs_:
            tr = [r[-1]["train_err"] for _, _, r in runs_]
            te = [r[-1]["test_err"] for _, _, r in runs_]
            ips = [r[-1]["images_per_s"] for _, _, r in runs_]
            summary[amp] = (statistics.mean(tr), statistics.mean(te), max(te) - min(te), statistics.mean(ips))
    lines += [
        "",
        "| precision | runs | mean training error (%) | mean test error (%) | test seed range | img/s |",
    ]
    lines.append("|---|---:|---:|---:|---:|---:|")
    for amp, (tr, te, rng, ips) in summary.items():
        lines.append(f"| {AMPS[amp]} | {len(by_amp[amp])} | {tr:.2f} | {te:.2f} | {rng:.2f} | {ips:.0f} |")
    if len(summary) == 2:
        gap = summary["bf16"][1] - summary["off"][1]
        rng = max(summary["bf16"][2], summary["off"][2])
        verdict = (
            "bf16 trains as well as fp32 here: the gap lies within the seed range"
            if abs(gap) <= rng
            else ("bf16 is better" if gap < 0 else "bf16 is WORSE") + " by more than the seed range"
        )
        lines += [
            "",
            f"Test error bf16 - fp32: {gap:+.2f} points (seed range {rng:.2f}). Verdict: {verdict}.",
            f"Speed: bf16 {summary['bf16'][3] / summary['off'][3]:.2f}x fp32 (img/s of the last "
            "epoch, one thread each, two runs sharing the machine, and with whatever else ran on it: "
            "indicative only; `reslearn bench` measures speed, docs/performance.md).",
        ]
    (docs / "report.md").write_text("\n".join(lines) + "\n")
    plot(by_amp, docs / "test_error.png")
    for amp_runs in by_amp.values():
        for name, _, _ in amp_runs:
            (docs / name).mkdir(exist_ok=True)
            for f in ("config.json", "metrics.jsonl", "final.json"):
                shutil.copy(runs / name / f, docs / name / f)
    print(f"report: {docs / 'report.md'}")


def plot(by_amp, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for amp, runs_ in by_amp.items():
        for name, _, rows in runs_:
            style = "-" if amp == "bf16" else "--"
            ax.plot([r["epoch"] for r in rows], [r["test_err"] for r in rows], style, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    ax.set_title("ResNet-20, CIFAR-10 (JPEG copy): fp32 (dashed) vs bf16")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
