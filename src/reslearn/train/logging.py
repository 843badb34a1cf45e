"""What a run reports: RUN_DIR/metrics.jsonl, TensorBoard, progress on the terminal."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..rundir import METRICS, read_metrics

__all__ = ["MetricsLog", "Progress", "format_row", "read_metrics"]


class MetricsLog:
    """RUN_DIR/metrics.jsonl (one JSON object per evaluation) and TensorBoard if present.
    Created on the main process only."""

    def __init__(self, run_dir: Path, resume_iteration: int | None, tensorboard: bool) -> None:
        self.path = run_dir / METRICS
        if resume_iteration is not None and self.path.exists():
            # Drop lines written after the checkpoint we resume from: they are re-made.
            read_metrics(run_dir)  # a damaged line is named before anything is rewritten
            keep = [
                ln
                for ln in self.path.read_text().splitlines()
                if ln.strip() and json.loads(ln)["iteration"] <= resume_iteration
            ]
            self.path.write_text("".join(ln + "\n" for ln in keep))
        elif self.path.exists():
            self.path.unlink()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"))
            except Exception:  # tensorboard not installed: jsonl only
                self.tb = None

    def write(self, row: dict) -> None:
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
        except OSError as e:
            from .faults import RunError

            raise RunError(
                f"could not write metrics to {self.path}: {e.strerror or e}. Training stopped; the last "
                f"checkpoint is intact: free space or fix the permissions, then continue with --resume"
            ) from e
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "iteration":
                    self.tb.add_scalar(k, v, row["iteration"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


class Progress:
    """Log lines or a tqdm bar (``progress``: auto | bar | log | none)."""

    def __init__(self, mode: str, total: int, initial: int, enabled: bool = True) -> None:
        self.quiet = mode == "none" or not enabled
        self.bar = None
        if not self.quiet and (mode == "bar" or (mode == "auto" and sys.stderr.isatty())):
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="it", dynamic_ncols=True)

    def log(self, msg: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, flush=True)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_row(row: dict, total: int) -> str:
    return (
        f"it {row['iteration']}/{total} ep {row['epoch']:.1f} lr {row['lr']:g} loss {row['loss']:.4f} "
        f"train_err {row['train_err']:.2f}%"
        + (f" val_err {row['val_err']:.2f}%" if "val_err" in row else "")
        + (f" test_err {row['test_err']:.2f}%" if row.get("test_err") is not None else "")
        + f" {row['images_per_s']:.0f} img/s"
    )
