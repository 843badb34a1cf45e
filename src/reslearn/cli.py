"""``reslearn <subcommand>``: each subcommand maps to one function."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_summary(a: argparse.Namespace) -> int:
    from .summary import format_summary

    print(format_summary(a.name, shortcut=a.shortcut, variant=a.variant))
    return 0


def _cmd_table1(a: argparse.Namespace) -> int:
    from .summary import format_table1

    print(format_table1())
    return 0


def _cmd_list(a: argparse.Namespace) -> int:
    from .models import list_models

    print("\n".join(list_models()))
    return 0


def _cmd_zoo(a: argparse.Namespace) -> int:
    from .published import index, rank

    nets = sorted(index(), key=rank)  # best first: what pretrained=True returns leads
    if not nets:
        print("no trained nets are published yet (benchmarks/studies/publish_net.py adds a finished run)")
    for e in nets:
        print(
            f"{e['name']}: {e['model']}, {e['split']} top-1 error {e['test_err']:.2f}% at iteration "
            f"{e['iteration']} ({e['data']})"
            + (
                f", {e['test_err_original']:.2f}% on the original test set"
                if "test_err_original" in e
                else ""
            )
            + f"; {e['file']}, {e['bytes'] / 1e6:.1f} MB, sha256 {e['sha256']}"
            + (f"\n  {e['note']}" if e.get("note") else "")
        )
    if nets:  # the example names the best measured net, the one a user most likely wants
        n, m = nets[0]["name"], nets[0]["model"]
        print(
            f"\nuse one by its name: reslearn predict {n} IMAGE...; reslearn eval {n} --data-dir DIR; "
            f"reslearn train --model {m} --init {n} --data-dir DIR (fine-tune); reslearn.load({n!r})"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reslearn", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("summary", help="Table-1-like layout, params and multiply-adds")
    s.add_argument("name", help="model name, e.g. resnet50, resnet56, plain34")
    s.add_argument("--shortcut", choices=["A", "B", "C"], default=None)
    s.add_argument("--variant", choices=["v1", "v1.5"], default=None)
    s.set_defaults(fn=_cmd_summary)

    s = sub.add_parser("table1", help="the paper's Table 1 FLOPs and CIFAR params beside ours")
    s.set_defaults(fn=_cmd_table1)

    s = sub.add_parser("list", help="list the named networks")
    s.set_defaults(fn=_cmd_list)

    s = sub.add_parser("zoo", help="the trained nets published with reslearn (load them by name)")
    s.set_defaults(fn=_cmd_zoo)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return p


# Flags whose name is not --<field> (kept as they always were).
TRAIN_FLAG_NAMES = {"model.name": "--model"}


def train_flag(info) -> str:
    return TRAIN_FLAG_NAMES.get(info.key, "--" + info.name.replace("_", "-"))


def _add_config_flags(s: argparse.ArgumentParser) -> dict[str, str]:
    """--config, --set and one flag per config field, generated from the dataclasses (their
    docstrings are the help, their defaults shown, never copied). Returns {dest: "section.field"}."""
    import typing

    from .train.config import config_fields

    s.add_argument("--config", metavar="FILE", help="a config file (a run's config.json works)")
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="set any config field, e.g. --set optim.weight_decay=5e-4 (repeatable)",
    )
    dests = {}
    groups = {}
    for f in config_fields():
        g = groups.get(f.section) or s.add_argument_group(f"{f.section} options")
        groups[f.section] = g
        dest = f"cfg__{f.section}__{f.name}"
        dests[dest] = f.key
        default = f.default if not isinstance(f.default, tuple) else ",".join(map(str, f.default))
        text = f"{f.help} (default: {default})".replace("%", "%%")  # argparse formats help with %
        kw = dict(dest=dest, default=argparse.SUPPRESS, help=text)
        args = typing.get_args(f.type)
        if f.type is bool:
            g.add_argument(train_flag(f), action=argparse.BooleanOptionalAction, **kw)
        elif f.type == (bool | None):
            g.add_argument(train_flag(f), choices=["auto", "on", "off"], **kw)
        elif f.choices is not None:
            g.add_argument(train_flag(f), choices=[c for c in f.choices if c is not None], **kw)
        else:
            base = next((a for a in args if a is not type(None)), f.type)
            meta = "X,Y" if typing.get_origin(base) is tuple else f.name.split("_")[-1].upper()
            g.add_argument(train_flag(f), metavar=meta, **kw)
    return dests


def _add_train(sub) -> None:
    s = sub.add_parser(
        "train",
        help="train a net with the paper's recipe (every config field is a flag)",
        description="Every field of the run's config is a flag below, or --set section.field=value, "
        "or a key of --config FILE (JSON, TOML or YAML, the layout of a run's config.json). "
        "Precedence: flags > --set > --config > defaults.",
    )
    s.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue this run exactly")
    s.add_argument(
        "--overwrite", action="store_true", help="replace the run in --out (its checkpoints and metrics)"
    )
    s.add_argument(
        "--data-changed",
        action="store_true",
        help="resume although the training images changed since the checkpoint (refused otherwise)",
    )
    s.add_argument(
        "--auto-resume",
        action="store_true",
        help="continue the run in --out if it holds one, else start it (for torchrun --max-restarts)",
    )
    s.add_argument(
        "--nproc",
        type=int,
        default=None,
        metavar="N",
        help="train with N processes on this machine: launches torchrun --standalone --nproc-per-node N",
    )
    s.set_defaults(fn=_cmd_train, cfg_dests=_add_config_flags(s))


def train_layers(a: argparse.Namespace) -> tuple[list[dict], dict[str, str]]:
    """The overrides of a ``reslearn train`` command line, as layers in precedence order
    (config file, --set, flags), and the flag that set each key (for error messages)."""
    from .train.config import config_fields, parse_set, parse_value, read_config_file

    infos = {f.key: f for f in config_fields()}
    file_layer = read_config_file(a.config) if a.config else {}
    set_layer = parse_set(a.set)
    flags, names = {}, {k: f"--set {k}" for k in set_layer}
    for dest, key in a.cfg_dests.items():
        if not hasattr(a, dest):
            continue
        raw = getattr(a, dest)
        info = infos[key]
        if info.type == (bool | None):
            value = {"auto": None, "on": True, "off": False}[raw]
        elif isinstance(raw, str):
            value = parse_value(key, raw)
        else:
            value = raw
        flags[key] = value
        names[key] = train_flag(info)
    if a.config:
        names.update({k: f"--config {a.config} ({k})" for k in file_layer if k not in names})
    return [file_layer, set_layer, flags], names


def config_from_args(a: argparse.Namespace):
    """The TrainConfig a ``reslearn train`` command line asks for (a new run)."""
    from .train.config import TrainConfig, apply_layers

    return apply_layers(TrainConfig(), train_layers(a)[0])


def _cmd_train(a: argparse.Namespace) -> int:
    from .distributed import is_main_process, launched_world_size
    from .train.launch import launch_torchrun, train_job

    if a.nproc is not None and a.nproc != 1 and launched_world_size() == 1:
        return launch_torchrun(a.nproc, a.argv)  # refuses N < 1; each worker runs train_job
    layers, names = train_layers(a)
    run_dir = train_job(layers, names, a.resume, a.overwrite, a.auto_resume, a.data_changed)
    if is_main_process():
        print(f"run directory: {run_dir}")
    return 0


def _add_device(s) -> None:
    from .train.config import RunConfig, config_fields

    doc = next(f.help for f in config_fields() if f.key == "run.device")
    s.add_argument("--device", default=RunConfig.device, help=doc)


def _add_threads(s) -> None:
    s.add_argument(
        "--threads",
        type=int,
        default=0,
        help="intra-op threads (default 0: OMP_NUM_THREADS if set, else a fair share of the cores "
        "beside the other reslearn jobs running)",
    )


def _thread_job(a: argparse.Namespace):
    """eval, predict and bench compute like a training job: they register as one, so a
    training run beside them gives up its share of the cores and takes it back after
    (reslearn.threads). An auto job takes its share when it starts."""
    from .threads import ThreadPolicy

    return ThreadPolicy(a.threads)


def _add_eval(sub) -> None:
    from .evaluate.views import TEST_VIEWS

    s = sub.add_parser(
        "eval",
        help="top-1/top-5 error of a checkpoint (CIFAR: test split, one 32x32 view; ImageNet: val/, "
        "single, 10crop or multiscale views)",
    )
    _add_checkpoint(s)
    s.add_argument("--data-dir", default=None, help="default: the run's data directory")
    s.add_argument(
        "--views",
        choices=list(TEST_VIEWS),
        default="single",
        help="ImageNet test protocol: single centre crop, Table 3's 10-crop, Table 4's multi-scale "
        "fully-convolutional (default: single)",
    )
    s.add_argument("--class-index", default=None, metavar="FILE", help="ImageNet: index wnid name TSV")
    _add_device(s)
    from .recipes import RECIPES

    rule = ", ".join(
        f"{r.name}: {'at most ' if r.photos else ''}{r.eval_batch_size}" for r in RECIPES.values()
    )
    s.add_argument("--batch-size", type=int, default=None, help=f"default: the recipe's ({rule})")
    s.add_argument("--workers", type=int, default=0, help="ImageNet decode workers; 0 = one per core")
    s.add_argument("--json", action="store_true", help="one JSON object on stdout")
    s.add_argument(
        "--per-class",
        action="store_true",
        help="each class's error and the most confused pairs; writes confusion.json and confusion.png "
        "(the matrix, a heat map) beside the checkpoint",
    )
    _add_overwrite(s)
    _add_threads(s)
    s.set_defaults(fn=_cmd_eval)


def _cmd_eval(a: argparse.Namespace) -> int:
    import json

    from .evaluate import evaluate_checkpoint
    from .evaluate.per_class import confusion_paths, format_per_class, write_confusion
    from .published import WEIGHTS_DIR, trained_file
    from .train.config import JobOptions

    JobOptions.check(a)
    paths, src = None, a.checkpoint
    if a.per_class:  # beside the checkpoint; a published net's (in the package): here instead
        src = trained_file(a.checkpoint)  # resolved (a published file's sha256 checked) once
        paths = confusion_paths(Path.cwd() if src.parent == WEIGHTS_DIR else src, a.overwrite)
    with _thread_job(a):
        res = evaluate_checkpoint(
            src,
            data_dir=a.data_dir,
            views=a.views,
            class_index=a.class_index,
            device=a.device,
            batch_size=a.batch_size,
            workers=a.workers,
            per_class=a.per_class,
        )
    if paths:
        write_confusion(res, paths)
    if a.json:
        print(json.dumps(res))
        return 0
    at = "" if res["iteration"] is None else f" @ iteration {res['iteration']}"  # an old export: unknown
    print(
        f"{res['model']}{at} on {res['images']} {res['split']} images "
        f"({res['data']}, {res['views']} view{'s' if res['views'] != 'single' else ''}): "
        f"top-1 error {res['top1_err']:.2f}%, top-5 error {res['top5_err']:.2f}%"
    )
    if paths:
        print(format_per_class(res))
        print(f"wrote {paths[0]} and {paths[1]}")
    return 0


def _add_bench(sub) -> None:
    from .bench import DEFAULT_MODELS, DEFAULT_REPEAT, DEFAULT_SECONDS

    s = sub.add_parser("bench", help="training/inference img/s: baseline vs reslearn's fast path")
    s.add_argument("--models", default=",".join(DEFAULT_MODELS))
    _add_device(s)
    s.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="default: 128 for CIFAR nets; 256 (CUDA) or 16 (CPU) at 224x224",
    )
    s.add_argument(
        "--modes",
        default="baseline,reslearn",
        help="modes to compare; the first is the ratios' reference. Modes: baseline (eager NCHW "
        "fp32), reslearn (the training default here), channels_last, bf16, compile, compile_bf16",
    )
    s.add_argument(
        "--repeat", type=int, default=DEFAULT_REPEAT, help="interleaved rounds (default %(default)s)"
    )
    s.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help="training window per mode and round (default %(default)s)",
    )
    _add_threads(s)
    s.add_argument("--json", default=None, metavar="FILE", help="write the rows as JSON")
    _add_overwrite(s)
    s.set_defaults(fn=_cmd_bench)


def _cmd_bench(a: argparse.Namespace) -> int:
    from .bench import format_table, run_bench, write_json
    from .files import output_file
    from .train.config import JobOptions

    JobOptions.check(a)
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    if not models:
        raise ValueError(f"--models is empty: {a.models!r}")
    modes = tuple(m.strip() for m in a.modes.split(",") if m.strip())
    out = None
    if a.json:
        out = output_file(a.json, kind="bench", overwrite=a.overwrite, flag="--json", log=print)
    with _thread_job(a):
        rows = run_bench(models, a.device, a.batch_size, modes=modes, repeat=a.repeat, seconds=a.seconds)
    print(format_table(rows))
    if out:
        write_json(rows, out)
    return 0


def _csv(text: str, kind=str) -> tuple:
    items = tuple(kind(x.strip()) for x in text.split(",") if x.strip())
    if not items:
        raise ValueError(f"empty list: {text!r}")
    return items


def _add_reproduce(sub) -> None:
    from .reproduce.study import STUDIES

    s = sub.add_parser(
        "reproduce",
        help="train one of the paper's studies and write its report",
        description="Train every run of a study (finished runs are skipped, stopped ones continue "
        "from their checkpoints) and write DIR/report.md. Studies: "
        + "; ".join(f"{n}: {st.about}" for n, st in STUDIES.items())
        + ". Every train flag, --set and --config apply to each run over the study's settings.",
    )
    s.add_argument("study", choices=list(STUDIES), help="the study (see above)")
    s.add_argument("--models", default=None, help="comma-separated nets (default: the study's)")
    s.add_argument("--seeds", default=None, help="comma-separated seeds (default: the study's)")
    s.add_argument("--arms", default=None, help="comma-separated arms of a study of arms (default: all)")
    s.add_argument("--parallel", type=int, default=1, metavar="N", help="train N runs at a time")
    s.add_argument("--list", action="store_true", help="print each run's folder and state, train nothing")
    s.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # --parallel's others
    s.set_defaults(fn=_cmd_reproduce, cfg_dests=_add_config_flags(s))


def _cmd_reproduce(a: argparse.Namespace) -> int:
    from .reproduce.study import get_study, run_parallel, run_study, study_state
    from .train.launch import without_flag

    study = get_study(a.study)
    try:
        seeds = _csv(a.seeds, int) if a.seeds else None
    except ValueError as e:
        raise ValueError(f"--seeds must be comma-separated integers, got {a.seeds!r}") from e
    models, arms = (_csv(x) if x else None for x in (a.models, a.arms))
    layers, names = train_layers(a)
    for key, flag in (("model.name", "--models"), ("run.seed", "--seeds")):
        if any(key in lay for lay in layers):
            raise ValueError(f"{names[key]} does not apply to a study: give {flag}")
    out = next((lay["run.out"] for lay in reversed(layers) if lay.get("run.out")), None)
    if not out:
        raise ValueError("reproduce needs --out DIR (the study's folder: DIR/<run>/ and DIR/report.md)")
    layers = [{k: v for k, v in lay.items() if k != "run.out"} for lay in layers]
    if a.list:
        for r in study.runs(models, seeds, arms):
            print(f"{r.name}\t{study_state(Path(out), r)}")
        return 0

    def run(report: bool) -> Path:
        return run_study(study, out, layers, names, models, seeds, report=report, arms=arms)

    if a.parallel != 1 and not a.worker:  # then one more look: every run finished, the report
        run_parallel(a.parallel, without_flag(a.argv, "--parallel"), lambda: run(False))
    report = run(not a.worker)
    if not a.worker:
        print(f"report: {report}")
    return 0


def _add_responses(sub) -> None:
    s = sub.add_parser("responses", help="std of every 3x3 layer's response (paper Figure 7)")
    s.add_argument("checkpoints", nargs="+", help="checkpoint files or run directories")
    s.add_argument("--data-dir", default=None, help="default: each run's data directory")
    _add_device(s)
    s.add_argument("--out", default=None, metavar="FILE", help="write the results as JSON")
    _add_overwrite(s)
    s.set_defaults(fn=_cmd_responses)


def _cmd_responses(a: argparse.Namespace) -> int:
    import json

    from .files import atomic_write_text, output_file
    from .reproduce.responses import checkpoint_responses
    from .speed import select_device

    dev = select_device(a.device)
    out = (
        output_file(
            a.out,
            kind="responses",
            overwrite=a.overwrite,
            reading=a.checkpoints,
            inside=[a.data_dir] if a.data_dir else [],
            log=print,
        )
        if a.out
        else None
    )
    results = []
    for ck in a.checkpoints:
        res = checkpoint_responses(ck, dev, a.data_dir)
        std = res["std"]
        results.append({"checkpoint": str(ck), **res, "sorted": sorted(std, reverse=True)})
        print(f"{res['model']} ({ck}): {len(std)} 3x3 layers, mean std {sum(std) / len(std):.3f}")
        print("  layer order: " + " ".join(f"{v:.2f}" for v in std))
        print("  sorted:      " + " ".join(f"{v:.2f}" for v in sorted(std, reverse=True)))
    if out:
        atomic_write_text(out, json.dumps(results, indent=1) + "\n")
    return 0


def _add_report(sub) -> None:
    s = sub.add_parser("report", help="(re)build DIR/report.md and its figures from the runs in DIR")
    s.add_argument("dir")
    s.set_defaults(fn=_cmd_report)


def _cmd_report(a: argparse.Namespace) -> int:
    from .reproduce import write_report

    if not Path(a.dir).is_dir():
        raise ValueError(f"{a.dir!r} is not a folder of runs (expected DIR/<model>-s<seed>/)")
    print(f"report: {write_report(a.dir)}")
    return 0


def _add_predict(sub) -> None:
    s = sub.add_parser("predict", help="top-k classes of images with a trained net")
    _add_checkpoint(s)
    s.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    from .predict import BATCH_SIZE, TOP_K

    s.add_argument("--top-k", type=int, default=TOP_K)
    s.add_argument("--json", action="store_true", help="one JSON list on stdout")
    _add_device(s)
    s.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    _add_threads(s)
    s.set_defaults(fn=_cmd_predict)


def _cmd_predict(a: argparse.Namespace) -> int:
    import json

    from .predict import predict_files
    from .train.config import JobOptions

    JobOptions.check(a)
    with _thread_job(a):
        results, failed = predict_files(a.checkpoint, a.images, a.top_k, a.device, a.batch_size)
    for path, err in failed:
        if Path(path).suffix.lower() in (".safetensors", ".pt", ".pth", ".onnx"):
            err = f"it is a net's file, not an image (the net comes first: reslearn predict {path} IMAGE...)"
        print(f"reslearn predict: cannot read {path}: {err}", file=sys.stderr)
    if a.json:
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            top = ", ".join(f"{t['class']} {t['prob']:.3f}" for t in r["top_k"])
            print(f"{r['image']}: {top}")
    return 1 if failed else 0


def _add_export(sub) -> None:
    s = sub.add_parser("export", help="a checkpoint as ONNX, TorchScript or safetensors")
    _add_checkpoint(s)
    from .use import EXPORT_FORMATS

    s.add_argument("--format", required=True, choices=list(EXPORT_FORMATS))
    s.add_argument("--out", required=True, metavar="FILE")
    _add_overwrite(s)
    s.set_defaults(fn=_cmd_export)


def _add_checkpoint(s) -> None:
    s.add_argument(
        "checkpoint", help="a checkpoint, a run directory, a .safetensors export or a published net"
    )


def _add_overwrite(s) -> None:
    s.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out file (never a checkpoint, never the input)",
    )


def _cmd_export(a: argparse.Namespace) -> int:
    from .use import export

    print(f"wrote {export(a.checkpoint, a.format, a.out, a.overwrite)}")
    return 0


def _add_import_torchvision(sub) -> None:
    s = sub.add_parser(
        "import-torchvision", help="a torchvision ResNet weights file as a reslearn checkpoint"
    )
    s.add_argument("weights", help="a torchvision state dict (.pth)")
    s.add_argument("--model", required=True, help="resnet18 ... resnet152")
    s.add_argument("--out", required=True, metavar="CKPT")
    _add_overwrite(s)
    s.set_defaults(fn=_cmd_import_torchvision)


def _cmd_import_torchvision(a: argparse.Namespace) -> int:
    from .use import import_torchvision

    print(f"wrote {import_torchvision(a.weights, a.model, a.out, a.overwrite)}")
    return 0


_EXTRA_COMMANDS: list = [
    _add_train,
    _add_eval,
    _add_bench,
    _add_reproduce,
    _add_responses,
    _add_report,
    _add_predict,
    _add_export,
    _add_import_torchvision,
]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    from .train.faults import Interrupted, RunError

    try:
        from . import environ

        environ.check()  # every variable reslearn reads, as strictly as its flags
        return args.fn(args)
    except ValueError as e:  # bad user input: one clear line, no traceback
        print(f"reslearn {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"reslearn {args.command}: {e}", file=sys.stderr)
        return e.exit_code
    except RunError as e:  # the run could not go on; the message says what was kept
        print(f"reslearn {args.command}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a file that cannot be read or written: name it, no traceback
        where = f" {e.filename!r}" if e.filename else ""
        print(f"reslearn {args.command}: error:{where} {e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
