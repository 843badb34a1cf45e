"""``reslearn <subcommand>``: each subcommand maps to one function."""

from __future__ import annotations

import argparse
import sys


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

    for register in _EXTRA_COMMANDS:
        register(sub)
    return p


def _add_train(sub) -> None:
    from .train.config import DataConfig, OptimConfig, RunConfig

    s = sub.add_parser("train", help="train a CIFAR net with the paper's recipe")
    s.add_argument("--model", default="resnet20", help="network name (default: resnet20)")
    s.add_argument("--shortcut", choices=["A", "B", "C"], default=None)
    s.add_argument("--variant", choices=["v1", "v1.5"], default=None)
    s.add_argument("--zero-init-residual", action="store_true")
    s.add_argument("--data-dir", default=DataConfig.data_dir)
    s.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    s.add_argument("--val-split", type=int, default=0, help="hold out K training images (paper: 5000)")
    s.add_argument("--normalize", choices=["pixel", "channel"], default="pixel")
    s.add_argument("--no-augment", action="store_true")
    s.add_argument("--out", default=None, help="run directory (default runs/<model>-s<seed>-<time>)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--iterations", type=int, default=None, help="default 64000, the paper's")
    g.add_argument("--epochs", type=int, default=None)
    s.add_argument("--batch-size", type=int, default=OptimConfig.batch_size)
    s.add_argument("--lr", type=float, default=OptimConfig.lr)
    s.add_argument("--warmup", choices=["auto", "on", "off"], default="auto")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto")
    s.add_argument("--eval-every", type=int, default=0, help="iterations; 0 = one epoch")
    s.add_argument("--checkpoint-every", type=int, default=0, help="iterations; 0 = each eval")
    s.add_argument("--amp", choices=["auto", "bf16", "off"], default=RunConfig.amp)
    s.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto")
    s.add_argument("--compile", action="store_true", help="torch.compile the model")
    s.add_argument("--progress", choices=["auto", "bar", "log", "none"], default="auto")
    s.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue this run exactly")
    s.set_defaults(fn=_cmd_train)


def config_from_args(a: argparse.Namespace):
    from .train.config import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig

    iterations = a.iterations if a.iterations is not None else (None if a.epochs else 64_000)
    return TrainConfig(
        ModelConfig(a.model, a.shortcut, a.variant, a.zero_init_residual),
        DataConfig(a.data_dir, a.val_split, a.normalize, not a.no_augment, not a.no_download),
        OptimConfig(
            batch_size=a.batch_size,
            lr=a.lr,
            iterations=iterations,
            epochs=a.epochs,
            warmup=a.warmup,
        ),
        RunConfig(
            out=a.out,
            seed=a.seed,
            device=a.device,
            eval_every=a.eval_every,
            checkpoint_every=a.checkpoint_every,
            amp=a.amp,
            compile=a.compile,
            channels_last={"auto": None, "on": True, "off": False}[a.channels_last],
            progress=a.progress,
        ),
    )


def _cmd_train(a: argparse.Namespace) -> int:
    from .train import train

    if a.resume:
        run_dir = train(resume=a.resume)
    else:
        run_dir = train(config_from_args(a))
    print(f"run directory: {run_dir}")
    return 0


def _add_eval(sub) -> None:
    s = sub.add_parser("eval", help="test error of a checkpoint (single 32x32 view)")
    s.add_argument("checkpoint", help="a checkpoint file or a run directory")
    s.add_argument("--data-dir", default=None, help="default: the run's data directory")
    s.add_argument("--device", default="auto")
    s.add_argument("--batch-size", type=int, default=1000)
    s.add_argument("--json", action="store_true", help="one JSON object on stdout")
    s.set_defaults(fn=_cmd_eval)


def _cmd_eval(a: argparse.Namespace) -> int:
    import json

    from .train.engine import SpeedSettings, checkpoint_data, evaluate, load_for_inference, select_device

    device = select_device(a.device)
    model, normalizer, ckpt = load_for_inference(a.checkpoint, device)
    data = checkpoint_data(ckpt, a.data_dir)
    res = evaluate(
        model,
        normalizer,
        data.test_x,
        data.test_y,
        batch_size=a.batch_size,
        speed=SpeedSettings(channels_last=True),
        device=device,
    )
    res.update(model=ckpt["model_name"], iteration=ckpt["iteration"], data=data.source)
    if a.json:
        print(json.dumps(res))
    else:
        print(
            f"{res['model']} @ iteration {res['iteration']} on {res['images']} test images "
            f"({data.source}): top-1 error {res['top1_err']:.2f}%, "
            f"top-5 error {res['top5_err']:.2f}%"
        )
    return 0


def _add_bench(sub) -> None:
    s = sub.add_parser("bench", help="training/inference img/s: baseline vs reslearn's fast path")
    s.add_argument("--models", default="resnet20,resnet56,resnet110,resnet18,resnet50")
    s.add_argument("--device", default="auto")
    s.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="default: 128 for CIFAR nets; 256 (CUDA) or 16 (CPU) at 224x224",
    )
    s.add_argument("--json", default=None, metavar="FILE", help="write the rows as JSON")
    s.set_defaults(fn=_cmd_bench)


def _cmd_bench(a: argparse.Namespace) -> int:
    from .bench import format_table, run_bench, write_json

    models = [m.strip() for m in a.models.split(",") if m.strip()]
    if not models:
        raise ValueError(f"--models is empty: {a.models!r}")
    if a.batch_size is not None and a.batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {a.batch_size}")
    rows = run_bench(models, a.device, a.batch_size)
    print(format_table(rows))
    if a.json:
        write_json(rows, a.json)
    return 0


def _csv(text: str, kind=str) -> tuple:
    items = tuple(kind(x.strip()) for x in text.split(",") if x.strip())
    if not items:
        raise ValueError(f"empty list: {text!r}")
    return items


def _add_reproduce(sub) -> None:
    from .reproduce.cifar import PAPER_MODELS

    s = sub.add_parser("reproduce", help="train the paper's study and write its report")
    s.add_argument("study", choices=["cifar"])
    s.add_argument("--out", required=True, help="directory for DIR/<model>-s<seed>/ and report.md")
    s.add_argument("--models", default=",".join(PAPER_MODELS))
    s.add_argument("--seeds", default="1")
    s.add_argument("--iterations", type=int, default=64_000, help="default: the paper's 64000")
    s.add_argument("--eval-every", type=int, default=0, help="iterations; 0 = one epoch")
    s.add_argument("--data-dir", default="./data/cifar10")
    s.add_argument("--device", default="auto")
    s.set_defaults(fn=_cmd_reproduce)


def _cmd_reproduce(a: argparse.Namespace) -> int:
    from .reproduce import reproduce_cifar

    try:
        seeds = _csv(a.seeds, int)
    except ValueError as e:
        raise ValueError(f"--seeds must be comma-separated integers, got {a.seeds!r}") from e
    report = reproduce_cifar(a.out, _csv(a.models), seeds, a.iterations, a.data_dir, a.device, a.eval_every)
    print(f"report: {report}")
    return 0


def _add_responses(sub) -> None:
    s = sub.add_parser("responses", help="std of every 3x3 layer's response (paper Figure 7)")
    s.add_argument("checkpoints", nargs="+", help="checkpoint files or run directories")
    s.add_argument("--data-dir", default=None, help="default: each run's data directory")
    s.add_argument("--device", default="auto")
    s.add_argument("--out", default=None, metavar="FILE", help="write the results as JSON")
    s.set_defaults(fn=_cmd_responses)


def _cmd_responses(a: argparse.Namespace) -> int:
    import json

    from .reproduce import layer_responses
    from .train.engine import checkpoint_data, load_for_inference, select_device

    dev = select_device(a.device)
    results = []
    for ck in a.checkpoints:
        model, normalizer, ckpt = load_for_inference(ck, dev)
        res = layer_responses(model, normalizer, checkpoint_data(ckpt, a.data_dir).test_x)
        std = [v for _, v in res]
        results.append(
            {
                "checkpoint": str(ck),
                "model": ckpt["model_name"],
                "layers": [n for n, _ in res],
                "std": std,
                "sorted": sorted(std, reverse=True),
            }
        )
        print(f"{ckpt['model_name']} ({ck}): {len(std)} 3x3 layers, mean std {sum(std) / len(std):.3f}")
        print("  layer order: " + " ".join(f"{v:.2f}" for v in std))
        print("  sorted:      " + " ".join(f"{v:.2f}" for v in sorted(std, reverse=True)))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def _add_report(sub) -> None:
    s = sub.add_parser("report", help="(re)build DIR/report.md and its figures from the runs in DIR")
    s.add_argument("dir")
    s.set_defaults(fn=_cmd_report)


def _cmd_report(a: argparse.Namespace) -> int:
    from .reproduce import write_report

    print(f"report: {write_report(a.dir)}")
    return 0


_EXTRA_COMMANDS: list = [_add_train, _add_eval, _add_bench, _add_reproduce, _add_responses, _add_report]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except ValueError as e:  # bad user input: one clear line, no traceback
        print(f"reslearn {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
