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


_EXTRA_COMMANDS: list = []


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except ValueError as e:  # bad user input: one clear line, no traceback
        print(f"reslearn {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
