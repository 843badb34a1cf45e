"""Bad input by generation (issue 32): argument lists and environment variables built from
each subcommand's own parser, run in process against a workspace of tiny data sets and a
finished run. For every example: exit 0, or a non-zero exit with one line that says what
is wrong; never a traceback; no file outside the command's declared output changed.

Fixed seed (derandomize) and a bounded example count, so CI is fast and repeatable; the
hand-written table of tests/test_bad_inputs.py stays beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from reslearn import environ  # noqa: E402
from reslearn.cli import build_parser  # noqa: E402
from reslearn.cli import main as cli_main  # noqa: E402

from .helpers import write_pickle_cifar  # noqa: E402

# What keeps an example cheap: a tiny net, a step or two, a short benchmark. Random flags
# come after, so an example may override any of these with another small value.
BASE = {
    "train": ["--model", "cifar_resnet8", "--data-dir", "c10", "--no-download", "--iterations", "2",
              "--batch-size", "16", "--out", "out/run", "--progress", "none", "--no-tensorboard"],
    "reproduce": ["--models", "cifar_resnet8", "--iterations", "2", "--data-dir", "c10",
                  "--out", "out/study"],
    "bench": ["--models", "cifar_resnet8", "--seconds", "0.02", "--repeat", "1", "--batch-size", "8"],
}  # fmt: skip
OUTPUT_FLAGS = ("--out", "--json")  # what a command declares it writes
SKIP = {"--nproc", "--parallel", "--compile", "--help", "--workers", "--loader"}  # new processes or minutes
VALUES = [
    "-1", "0", "1", "2", "3", "0.5", "1e-3", "nan", "inf", "-inf", "", " ", "abc", "none", "auto",
    "on", "off", "x,y", "1,2", "r0", "r0/last.pt", "c10", "img.png", "afile.txt", "nosuch", "out/a.json",
    "out/b.st", "mine", "\x1b[31mred", "é",
]  # fmt: skip
ENV = ["abc", "0", "-2", "1", "4,2", "inf", "afile.txt", "out/cache", ""]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


SUBCOMMANDS = _subcommands()
# The commands that read and write files most often, more often: every subcommand still comes up.
WEIGHTED = sorted(SUBCOMMANDS) + ["train"] * 6 + ["eval", "predict", "export", "responses", "reproduce"] * 2


@st.composite
def command_lines(draw):
    name = draw(st.sampled_from(WEIGHTED))
    actions = [a for a in SUBCOMMANDS[name]._actions if not isinstance(a, argparse._HelpAction)]
    argv = [name]
    positionals = [a for a in actions if not a.option_strings]
    for a in positionals:
        if a.choices:
            argv.append(draw(st.sampled_from([*map(str, a.choices), "bogus"])))
        else:
            argv.append(draw(st.sampled_from(VALUES)))
    argv += BASE.get(name, [])
    optionals = [a for a in actions if a.option_strings and a.option_strings[0] not in SKIP]
    for a in draw(st.lists(st.sampled_from(optionals), max_size=4, unique_by=id)) if optionals else []:
        flag = draw(st.sampled_from(a.option_strings))
        if a.nargs == 0:
            argv.append(flag)  # store_true, or one side of --x/--no-x
        elif a.choices:
            argv += [
                flag,
                draw(st.sampled_from([*map(str, (c for c in a.choices if c is not None)), "bogus"])),
            ]
        else:
            argv += [flag, draw(st.sampled_from(VALUES))]
    env = draw(st.dictionaries(st.sampled_from(sorted(environ.VARIABLES)), st.sampled_from(ENV), max_size=2))
    return argv, env


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    old = Path.cwd()
    os.chdir(root)
    try:
        from PIL import Image

        write_pickle_cifar(root / "c10", per_batch=16, test=16)
        Image.new("RGB", (32, 32), (200, 10, 10)).save(root / "img.png")
        (root / "afile.txt").write_text("a file\n")
        (root / "mine").mkdir()
        (root / "mine" / "config.json").write_text("{}\n")
        argv = [
            "train",
            "--model",
            "cifar_resnet8",
            "--data-dir",
            "c10",
            "--no-download",
            "--iterations",
            "2",
        ]
        assert (
            cli_main([*argv, "--batch-size", "16", "--out", "r0", "--progress", "none", "--no-tensorboard"])
            == 0
        )
        yield root
    finally:
        os.chdir(old)


def _snapshot(root: Path, declared: set[Path]) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if any(p == d or d in p.parents for d in declared) or p.name.startswith(
            ("confusion.", ".reslearn-lock")
        ):
            continue
        out[str(p.relative_to(root))] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@settings(
    max_examples=int(os.environ.get("RESLEARN_FUZZ_EXAMPLES", "60")),
    derandomize=True,  # the same examples on every run: CI is repeatable
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@given(example=command_lines())
def test_generated_command_lines_exit_cleanly_and_touch_only_their_output(workspace, example, capsys):
    argv, env = example
    root = workspace
    (root / "out").mkdir(exist_ok=True)
    declared = {root / "out"} | {
        (root / argv[i + 1]).resolve() for i, a in enumerate(argv[:-1]) if a in OUTPUT_FLAGS
    }
    # the folders an environment variable names are the user's choice of output too
    declared |= {(root / v).resolve() for k, v in env.items() if k.endswith("_DIR") and v.strip()}
    before = _snapshot(root, declared)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        os.chdir(root)
        try:
            rc = cli_main(list(argv))
        except SystemExit as e:  # argparse: a usage line, then one error line
            rc = e.code
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    out, err = capsys.readouterr()
    if os.environ.get("RESLEARN_FUZZ_LOG"):
        with open(os.environ["RESLEARN_FUZZ_LOG"], "a") as log:
            log.write(f"{rc} {argv} {env} {err.strip().splitlines()[-1:] if err.strip() else ''}\n")
    assert "Traceback" not in out + err, (argv, env, err)
    assert rc in (0, 1, 2), (argv, env, rc, err)
    if rc != 0:
        problem = [ln for ln in err.splitlines() if "error" in ln]
        assert len(problem) == 1, (argv, env, err)  # one line says what is wrong
        assert "\x1b" not in problem[0] or "\x1b" in " ".join(argv), problem  # no raw terminal codes
    assert _snapshot(root, declared) == before, (argv, env)
    shutil.rmtree(root / "out")  # the next example starts clean
