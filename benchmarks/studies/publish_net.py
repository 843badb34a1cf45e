"""Publish a finished run as one of reslearn's trained nets (issue 22): export it as
``src/reslearn/weights/<name>.safetensors``, measure its test error with the paper's
protocol (reslearn eval), and list it with its sha256 in ``weights/index.json``.

Usage: python benchmarks/studies/publish_net.py RUN_DIR NAME [--overwrite]
       e.g. python benchmarks/studies/publish_net.py runs/degradation-16k/resnet56-s1 resnet56-cifar10-16k
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from reslearn.evaluate import evaluate_checkpoint
from reslearn.files import atomic_write, atomic_write_text
from reslearn.published import WEIGHTS_DIR, index, sha256
from reslearn.use import export


def publish(
    run: Path, name: str, weights_dir: Path = WEIGHTS_DIR, overwrite: bool = False, note: str = ""
) -> dict:
    """Export ``run`` as ``weights_dir/<name>.safetensors``, measure its test error with the
    paper's protocol and list it in the index (replacing an entry only with ``overwrite``).
    ``note``: what a user should know about it (its data, its schedule), shown by `reslearn zoo`."""
    nets = [e for e in index(weights_dir) if e["name"] != name]
    if len(nets) != len(index(weights_dir)) and not overwrite:
        raise ValueError(f"a net called {name!r} is already published; replace it with --overwrite")
    weights_dir.mkdir(parents=True, exist_ok=True)
    out = weights_dir / f"{name}.safetensors"
    if out.exists() and not overwrite:
        raise ValueError(f"{str(out)!r} exists (an unlisted file); remove it or give --overwrite")
    # reslearn's commands write nothing inside the installed package (issue 32); publishing is
    # the one writer there: export outside it, then copy the bytes in atomically.
    with tempfile.TemporaryDirectory() as tmp:
        data = export(run, "safetensors", Path(tmp) / out.name).read_bytes()
    atomic_write(out, lambda f: f.write(data))
    res = evaluate_checkpoint(run, device="cpu")
    kind, _, where = res["data"].partition(":")  # the folder's name, not this machine's path
    entry = {
        "name": name,
        "model": res["model"],
        "iteration": res["iteration"],
        "test_err": round(res["top1_err"], 2),
        "split": res["split"],
        "data": f"{kind}:{Path(where).name}" if where else kind,
        "file": out.name,
        "bytes": out.stat().st_size,
        "sha256": sha256(out),
        **({"note": note} if note else {}),
    }
    atomic_write_text(weights_dir / "index.json", json.dumps({"nets": [*nets, entry]}, indent=1) + "\n")
    return entry


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run")
    p.add_argument("name")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--note", default="", help="e.g. the data and schedule it was trained on")
    a = p.parse_args()
    if not (Path(a.run) / "final.json").is_file():
        raise SystemExit(f"{a.run} is not a finished run (no final.json): publish finished nets only")
    print(json.dumps(publish(Path(a.run), a.name, overwrite=a.overwrite, note=a.note), indent=1))


if __name__ == "__main__":
    main()
