"""Regression references that hold on every CPU kind.

A reference file holds the metrics of one short run, keyed by the kernels that made them
(``reslearn.speed.kernel_key``: torch's version and CPU capability, the ISA flags oneDNN and
MKL dispatch on, the L2 size, the thread count; never the CPU's model name, which names
chips of different ISAs alike). Where this machine's key has rows, the run must give them to
the last bit. Everywhere, the run must also fall in the band measured across CPU kinds
(``cross_kind``), widened by its own width on each side, with a floor: fp32 kernel-order
differences in the last bit grow through SGD to that band's width, no further.

To (re)record this machine's rows: RESLEARN_RECORD_REGRESSION=1 pytest -k regression
(the test then skips, saying what it wrote).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reslearn.speed import kernel_key

REGRESSION = Path(__file__).parent / "regression"
KEYS = ("iteration", "epoch", "lr", "loss", "train_err", "val_err", "test_err")
METRICS = ("loss", "train_err", "test_err")
BAND_FLOOR = {"loss": 0.01, "train_err": 1.0, "test_err": 1.0}  # points for errors


def same_rows(a: list[dict], b: list[dict], tol: float = 0.0) -> None:
    assert len(a) == len(b), (len(a), len(b))
    for ra, rb in zip(a, b):
        for k in KEYS:
            va, vb = ra.get(k), rb.get(k)
            if isinstance(va, float) and isinstance(vb, float):
                assert abs(va - vb) <= tol, (k, ra["iteration"], va, vb)
            else:
                assert va == vb, (k, va, vb)


def within_band(kinds: dict[str, list[dict]], rows: list[dict], elsewhere: list[dict] | None = None) -> None:
    """Each metric of each row inside [lo - w, hi + w], where [lo, hi] is what the measured
    CPU kinds gave and w = max(hi - lo, floor, the width measured elsewhere): a band measured
    on one kind's kernel variants only is widened by the spread other kinds showed on the
    same run (the reference's ``width_elsewhere``)."""
    runs = list(kinds.values())
    assert all(len(r) == len(rows) for r in runs), "reference kinds and run differ in rows"
    for i, row in enumerate(rows):
        for k in ("iteration", "lr"):
            assert all(r[i][k] == row[k] for r in runs), (k, row[k])
        for m in METRICS:
            seen = [r[i][m] for r in runs]
            lo, hi = min(seen), max(seen)
            w = max(hi - lo, BAND_FLOOR[m], elsewhere[i][m] if elsewhere else 0.0)
            assert lo - w <= row[m] <= hi + w, (
                f"iteration {row['iteration']}: {m} {row[m]:.4f} outside the cross-kind band "
                f"[{lo:.4f}, {hi:.4f}] widened by {w:.4f}"
            )


def check_or_record(name: str, rows: list[dict], threads: int, tol: float = 0.0) -> None:
    """Compare ``rows`` with the reference ``name`` (module docstring), or record them."""
    path = REGRESSION / name
    ref = json.loads(path.read_text())
    key = kernel_key(threads)
    picked = [{k: r[k] for k in KEYS if k in r} for r in rows]
    if os.environ.get("RESLEARN_RECORD_REGRESSION"):
        ref.setdefault("by_kernels", {})[key] = picked
        if "portable" in ref and not ref["portable"].get("rows"):
            ref["portable"]["rows"] = picked
        path.write_text(json.dumps(ref, indent=1) + "\n")
        pytest.skip(f"recorded {len(rows)} rows for {key!r} in {path}")
    if "portable" in ref:  # float64: the same numbers on every kind, to rounding
        same_rows(ref["portable"]["rows"], rows, ref["portable"]["tol"])
    if "cross_kind" in ref:
        within_band(ref["cross_kind"], rows, ref.get("width_elsewhere", {}).get("rows"))
    exact = ref.get("by_kernels", {}).get(key)
    if exact is not None:
        same_rows(exact, rows, tol)
    elif "cross_kind" not in ref and "portable" not in ref:
        pytest.fail(f"{path.name} has no rows for these kernels ({key}) and nothing portable")
