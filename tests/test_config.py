"""The run configuration: every field from flags, --set and files, validation naming the
value, and what may change on --resume."""

import json

import pytest

from reslearn.cli import main as cli_main
from reslearn.train import (
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
    read_metrics,
)


# ---------------------------------------------------------------- configuration
def _parse(argv):
    from reslearn.cli import build_parser, config_from_args

    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_every_flag_keeps_its_meaning():
    c = _parse(
        [
            "--model",
            "resnet56",
            "--shortcut",
            "B",
            "--zero-init-residual",
            "--data-dir",
            "D",
            "--no-download",
            "--val-split",
            "5000",
            "--normalize",
            "channel",
            "--no-augment",
            "--out",
            "O",
            "--batch-size",
            "64",
            "--lr",
            "0.05",
            "--warmup",
            "off",
            "--seed",
            "3",
            "--device",
            "cpu",
            "--eval-every",
            "7",
            "--checkpoint-every",
            "9",
            "--amp",
            "bf16",
            "--channels-last",
            "off",
            "--compile",
            "--progress",
            "log",
            "--iterations",
            "100",
        ]
    )
    assert (c.model.name, c.model.shortcut, c.model.zero_init_residual) == ("resnet56", "B", True)
    assert (c.data.data_dir, c.data.download, c.data.val_split, c.data.normalize, c.data.augment) == (
        "D",
        False,
        5000,
        "channel",
        False,
    )
    assert (c.optim.batch_size, c.optim.lr, c.optim.warmup, c.optim.iterations) == (64, 0.05, "off", 100)
    assert (c.run.out, c.run.seed, c.run.device, c.run.eval_every, c.run.checkpoint_every) == (
        "O",
        3,
        "cpu",
        7,
        9,
    )
    assert (c.run.amp, c.run.channels_last, c.run.compile, c.run.progress) == ("bf16", False, True, "log")
    e = _parse(["--epochs", "5"])
    assert (e.optim.epochs, e.optim.iterations) == (5, None)
    assert _parse([]) == TrainConfig()  # no flag: the dataclass defaults, nothing copied


def test_every_field_is_settable_from_flags_set_and_files(tmp_path):
    from reslearn.train.config import config_fields

    assert _parse(["--set", "optim.weight_decay=5e-4"]).optim.weight_decay == 5e-4
    assert _parse(["--norm-weight-decay", "0"]).optim.norm_weight_decay == 0.0
    assert _parse(["--milestones", "0.3,0.6"]).optim.milestones == (0.3, 0.6)
    (tmp_path / "c.toml").write_text(
        '[optim]\nweight_decay = 0.0005\nepochs = 3\n[model]\nname = "resnet32"\n'
    )
    c = _parse(["--config", str(tmp_path / "c.toml"), "--set", "model.name=resnet44"])
    assert (c.optim.weight_decay, c.optim.epochs, c.optim.iterations, c.model.name) == (
        5e-4,
        3,
        None,
        "resnet44",
    )
    (tmp_path / "c.json").write_text(json.dumps({"run": {"seed": 9}}))
    assert _parse(["--config", str(tmp_path / "c.json"), "--seed", "4"]).run.seed == 4  # flags win
    from reslearn.cli import build_parser

    helptext = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for f in config_fields():  # one flag per field, its docstring as help
        flag = "--model" if f.key == "model.name" else "--" + f.name.replace("_", "-")
        assert flag in helptext, flag
    for bad, msg in (
        (["--set", "optim.nope=1"], "optim.nope"),
        (["--set", "lr"], "'lr'"),
        (["--set", "optim.lr=fast"], "'fast'"),
        (["--batch-size", "0"], "batch_size"),
    ):
        with pytest.raises(ValueError, match=msg):
            _parse(bad)


def test_resume_applies_safe_flags_and_refuses_the_others(tiny_data, tmp_path, capsys):
    out = tmp_path / "r"
    base = [
        "train",
        "--model",
        "cifar_resnet8",
        "--data-dir",
        str(tiny_data),
        "--no-download",
        "--batch-size",
        "32",
        "--iterations",
        "6",
        "--eval-every",
        "3",
        "--device",
        "cpu",
        "--progress",
        "log",
        "--out",
        str(out),
        "--no-tensorboard",
    ]
    assert cli_main(base) == 0
    assert '"batch_size": 32' in capsys.readouterr().out  # the resolved config is printed
    assert cli_main(["train", "--resume", str(out), "--lr", "0.5"]) == 2
    assert "--lr cannot change on --resume" in capsys.readouterr().err
    assert cli_main(["train", "--resume", str(out), "--iterations", "3"]) == 2
    assert "only lengthen" in capsys.readouterr().err
    assert (
        cli_main(
            [
                "train",
                "--resume",
                str(out),
                "--batch-size",
                "32",
                "--iterations",
                "9",
                "--eval-every",
                "9",
                "--progress",
                "none",
            ]
        )
        == 0
    )
    assert [r["iteration"] for r in read_metrics(out)] == [3, 6, 9]
    saved = json.loads((out / "config.json").read_text())
    assert saved["optim"]["iterations"] == 9 and saved["run"]["eval_every"] == 9


def test_config_validation_names_bad_values():
    with pytest.raises(ValueError, match="-3"):
        OptimConfig(batch_size=-3)
    with pytest.raises(ValueError, match="'fp8'"):
        RunConfig(amp="fp8")
    with pytest.raises(ValueError, match="'tpu'"):
        RunConfig(device="tpu")
    with pytest.raises(ValueError, match="0.9"):
        OptimConfig(milestones=(0.9, 0.5))
    with pytest.raises(ValueError, match="'E'"):
        ModelConfig(shortcut="E")


def test_the_docs_list_exactly_the_flags_a_resume_may_change():
    """Issue 33: RESUME_SAFE is the one owner of what --resume may change; the list in
    docs/configuration.md is held to it (it had drifted: three flags were missing)."""
    import re
    from pathlib import Path

    from reslearn.cli import train_flag
    from reslearn.train.config import RESUME_SAFE, config_fields

    text = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    para = text[text.index("`--resume RUN_DIR` with other flags") :].split("\n\n")[0]
    listed = {re.sub(r"\[no-\]", "", f) for f in re.findall(r"`(--[\w\[\]-]+)`", para)} - {"--resume"}
    flags = {train_flag(f) for f in config_fields() if f.key in RESUME_SAFE}
    assert listed == flags, (sorted(listed - flags), sorted(flags - listed))
