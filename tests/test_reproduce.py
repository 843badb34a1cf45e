import json
import shutil
import statistics

import pytest
import torch
from torch import nn

from reslearn import create_model, list_models
from reslearn.cli import main as cli_main
from reslearn.reproduce import (
    collect_runs,
    depth_trend,
    layer_responses,
    response_layers,
    summarize,
    verdicts,
    write_report,
)
from reslearn.reproduce import report as report_mod
from reslearn.reproduce.report import plot_training_curves, stretches
from reslearn.train import read_metrics, train

from .helpers import train_cfg, write_pickle_cifar


@pytest.mark.parametrize("name", [n for n in list_models() if n not in ("resnet1202",)])
def test_response_layers_are_the_3x3_convs(name):
    model = create_model(name)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    layers = response_layers(model)
    assert len(layers) == len(convs)
    assert all(isinstance(bn, nn.BatchNorm2d) for _, bn in layers)


def test_responses_capture_bn_output_before_relu_and_addition():
    torch.manual_seed(0)
    model = create_model("cifar_resnet8").eval()
    # Give BN non-trivial statistics so that BN output != ReLU output.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.bias.uniform_(-1, 1)
    captured = []
    for _name, bn in response_layers(model):
        bn.register_forward_hook(lambda mod, i, o: captured.append(o.detach().double()))
    images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    norm = nn.Identity()
    model(norm(images.float()))
    expected = [c.std().item() for c in captured]
    got = [s for _, s in layer_responses(model, lambda x: x.float(), images.split(7))]
    assert len(got) == 7  # stem + 2 x 3 blocks
    assert got == pytest.approx(expected, rel=1e-6)
    assert any((c < 0).any() for c in captured)  # before the ReLU: negatives present


def _fake_run(root, model, seed, train_errs, test_errs, responses=None, finished=True, arm="", its=300):
    d = root / (f"{model}-{arm}-s{seed}" if arm else f"{model}-s{seed}")
    d.mkdir(parents=True)
    cfg = {
        "model": {"name": model},
        "run": {"seed": seed},
        "optim": {"iterations": its, "batch_size": 128},
        "data": {"data_dir": "/data/cifar10-jpeg"},
    }
    (d / "config.json").write_text(json.dumps(cfg))
    rows = [
        {"iteration": 100 * (i + 1), "train_err": tr, "test_err": te, "lr": 0.1, "loss": 1.0}
        for i, (tr, te) in enumerate(zip(train_errs, test_errs))
    ]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if finished:
        final = {
            "test_err": test_errs[-1],
            "train_err": train_errs[-1],
            "device": "cpu",
            "speed": "channels_last, bf16",
            "data_source": "imagefolder:/data/cifar10-jpeg",
            "version": "0.1.0",
            "git_commit": "abc1234",
        }
        (d / "final.json").write_text(json.dumps(final))
    if responses is not None:
        (d / "responses.json").write_text(json.dumps({"model": model, "std": responses}))
    return d


def test_report_from_synthetic_runs(tmp_path):
    _fake_run(tmp_path, "plain20", 1, [50, 30, 20], [52, 35, 25], responses=[1.0, 2.0, 3.0])
    _fake_run(tmp_path, "plain20", 2, [50, 30, 22], [52, 35, 27])
    _fake_run(tmp_path, "plain56", 1, [60, 40, 30], [62, 45, 33], responses=[2.0, 4.0, 3.0])
    _fake_run(tmp_path, "resnet20", 1, [45, 25, 15], [47, 30, 19], responses=[0.5, 1.0, 1.0])
    _fake_run(tmp_path, "resnet20", 2, [45, 25, 16], [47, 30, 21])
    _fake_run(tmp_path, "resnet20", 3, [45, 25, 16], [47, 30, 23])
    _fake_run(tmp_path, "resnet56", 1, [44, 22, 10], [46, 28, 17], responses=[0.4, 0.6, 0.5])
    _fake_run(tmp_path, "resnet56", 2, [44, 22, 90], [46, 28, 99], finished=False)  # unfinished
    runs = collect_runs(tmp_path)
    s = summarize(runs)
    assert s["resnet20"].test_errs == [19, 21, 23]
    assert s["resnet20"].mean == pytest.approx(21.0)
    assert s["resnet20"].std == pytest.approx(statistics.stdev([19, 21, 23]))  # = 2.0
    assert s["resnet20"].best == 19
    assert s["resnet56"].test_errs == [17]  # the unfinished seed does not count
    assert s["plain20"].params == 269_722 and s["resnet56"].params == 853_018
    v = verdicts(runs, s)
    assert v[0] == "deeper plain net has higher training error: yes (plain56 30.00% vs plain20 21.00%)"
    assert v[1].startswith("deeper ResNet has lower training/test error: yes")
    assert v[2].startswith("ResNet responses smaller than plain: yes")
    path = write_report(tmp_path)
    md = path.read_text()
    assert "| resnet20 | 0.27M | 3 | 21.00 +- 2.00 | 19.00 |" in md
    assert "| 8.75 | +12.25 |" in md  # the paper's ResNet-20 error and our difference
    assert "| 19.00 / 21.00 / 23.00 (4.00) |" in md  # each seed, then the seed range
    # resnet56's curve is the mean of both seeds (the unfinished one diverged at 300)
    assert (
        "resnet56 against resnet20: ahead at 2 of 3 evaluations (first at 100), behind again at the end "
        "(gap -1.00 points at 100, narrowest -2.00 at 200, +37.00 at the end, 300)" in md
    )
    assert "| 300 | 0.1 | 21.00 | 58.00 | +37.00 |" in md
    # the unfinished run is named under the table with its last evaluation, and only it
    assert (
        "- resnet56 seed 2: iteration 300 of 300: held-out error 99.00%, training error 90.00%, lr 0.1" in md
    )
    assert md.count("Not finished") == 1 and "resnet20 seed" not in md
    assert "JPEG" in md and "abc1234" in md
    assert (tmp_path / "fig6_training_curves.png").stat().st_size > 10_000
    assert (tmp_path / "fig7_layer_responses.png").stat().st_size > 10_000


def test_a_shorter_budget_says_the_paper_column_is_the_64k_number(tmp_path):
    short, full = tmp_path / "16k", tmp_path / "64k"
    _fake_run(short, "resnet56", 1, [40, 5], [40, 10.31], its=16000)
    _fake_run(full, "resnet56", 1, [40, 1], [40, 7.64], its=64000)
    note = "The paper column is Table 6's error after 64,000 iterations; these runs train 16,000,"
    assert note in write_report(short).read_text()
    assert "The paper column is" not in write_report(full).read_text()


def test_figure6_draws_a_panel_only_for_the_kinds_of_net_a_study_has(tmp_path):
    """A ResNet-only study (the 16k and 64k ones) gets one panel, not an empty plain one."""
    _fake_run(tmp_path / "res", "resnet20", 1, [45, 25], [47, 30])
    _fake_run(tmp_path / "res", "resnet56", 1, [44, 22], [46, 28])
    assert plot_training_curves(collect_runs(tmp_path / "res"), tmp_path / "a.png") == ["ResNets"]
    _fake_run(tmp_path / "both", "plain20", 1, [45, 25], [47, 30])
    _fake_run(tmp_path / "both", "resnet20", 1, [44, 22], [46, 28])
    titles = plot_training_curves(collect_runs(tmp_path / "both"), tmp_path / "b.png")
    assert titles == ["plain networks", "ResNets"]
    _fake_run(tmp_path / "plain", "plain20", 1, [45, 25], [47, 30])
    assert plot_training_curves(collect_runs(tmp_path / "plain"), tmp_path / "c.png") == ["plain networks"]
    assert all((tmp_path / f).stat().st_size > 10_000 for f in ("a.png", "b.png", "c.png"))


def test_an_interim_report_of_unfinished_runs_shows_their_curves_and_no_unknowns(tmp_path):
    """What benchmarks/studies/study_queue.sh's keep_runs writes for a study that spans sessions."""
    _fake_run(tmp_path, "resnet20", 1, [45, 25, 15], [47, 30, 19], finished=False)
    _fake_run(tmp_path, "resnet56", 1, [44, 22, 10], [46, 28, 17], finished=False)
    md = write_report(tmp_path).read_text()
    assert "runs: 2 (0 finished)" in md and "unknown" not in md
    assert "- device, precision: recorded when a run finishes (none has yet)" in md
    assert "| resnet56 | 0.85M | 0 | unfinished | | | | 6.97 | |" in md  # with the paper's number
    assert "| 300 | 0.1 | 19.00 | 17.00 | -2.00 |" in md
    assert "- resnet20 seed 1: iteration 300 of 300: held-out error 19.00%" in md
    assert "- resnet56 seed 1: iteration 300 of 300: held-out error 17.00%, training error 10.00%" in md


def test_an_interim_report_of_a_study_of_arms_names_each_unfinished_runs_arm(tmp_path):
    _fake_run(tmp_path, "resnet56", 1, [45, 25], [47, 30], finished=False, arm="paper")
    _fake_run(tmp_path, "resnet56", 1, [44, 22], [46, 28], finished=False, arm="bn64")
    md = write_report(tmp_path).read_text()
    assert "- resnet56 [bn64] seed 1: iteration 200 of 300: held-out error 28.00%" in md
    assert "- resnet56 [paper] seed 1: iteration 200 of 300: held-out error 30.00%" in md


def test_the_data_line_names_each_data_set_once(tmp_path):
    """A study with finished and unfinished runs on one folder: the finished runs' source
    (format and path) names it; the unfinished runs' folder is not listed again beside it."""
    _fake_run(tmp_path, "resnet20", 1, [45, 25, 15], [47, 30, 19])
    _fake_run(tmp_path, "resnet56", 1, [44, 22, 10], [46, 28, 17], finished=False)
    md = write_report(tmp_path).read_text()
    assert "- data: imagefolder:/data/cifar10-jpeg\n" in md
    (tmp_path / "resnet56-s1" / "config.json").write_text(
        json.dumps({**json.loads((tmp_path / "resnet56-s1" / "config.json").read_text()),
                    "data": {"data_dir": "/elsewhere/cifar10"}})
    )  # fmt: skip
    md = write_report(tmp_path).read_text()
    assert "- data: /elsewhere/cifar10, imagefolder:/data/cifar10-jpeg\n" in md
    (tmp_path / "resnet56-s1" / "config.json").write_text(
        json.dumps({**json.loads((tmp_path / "resnet56-s1" / "config.json").read_text()),
                    "data": {"data_dir": "/data/cifar10"}})
    )  # fmt: skip
    md = write_report(tmp_path).read_text()  # a name that only begins the source's is another folder
    assert "- data: /data/cifar10, imagefolder:/data/cifar10-jpeg\n" in md


def test_depth_trend_finds_where_the_deeper_net_stays_ahead(tmp_path):
    # held-out errors every 100 iterations; resnet56 crosses at 300, falls back at 400 and is
    # ahead again from 500 to the end
    _fake_run(tmp_path, "resnet20", 1, [0] * 6, [50, 40, 30, 25, 22, 20])
    _fake_run(tmp_path, "resnet56", 1, [0] * 6, [60, 45, 29, 26, 21, 18])
    _fake_run(tmp_path, "resnet56", 2, [0] * 6, [60, 45, 29, 26, 21, 16], finished=False)
    trend = depth_trend(collect_runs(tmp_path))
    assert (trend.ref, trend.other) == ("resnet20", "resnet56")
    assert [r[0] for r in trend.rows] == [100, 200, 300, 400, 500, 600]
    assert trend.rows[-1][2:] == (20, 17)  # the mean over both resnet56 seeds
    assert trend.ahead_from() == 500
    assert trend.summary() == (
        "resnet56 ahead of resnet20 from iteration 500 on (gap +10.00 points at 100, -3.00 at 600)"
    )


def test_the_report_names_where_each_stretch_of_a_run_trained(tmp_path):
    """A study continued over sessions may go on on another machine: each metrics row names the
    process that wrote it, and the report lists each run's stretches."""
    d = _fake_run(tmp_path, "resnet20", 1, [50, 40, 30, 20], [52, 42, 32, 22])
    rows = [json.loads(ln) for ln in (d / "metrics.jsonl").read_text().splitlines()]
    for row, where in zip(rows[1:], ["cpu: bf16; AMX", "cpu: bf16; AMX", "cpu: fp32; AVX2"]):
        row["ran_on"] = where
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _fake_run(tmp_path, "resnet56", 1, [50, 30], [52, 30])
    runs = collect_runs(tmp_path)
    assert stretches(runs[0]) == [
        (1, 100, "not recorded"),
        (101, 300, "cpu: bf16; AMX"),
        (301, 400, "cpu: fp32; AVX2"),
    ]
    md = write_report(tmp_path).read_text()
    assert (
        "  - resnet20-s1: iterations 1-100: not recorded; iterations 101-300: cpu: bf16; AMX; "
        "iterations 301-400: cpu: fp32; AVX2\n"
    ) in md
    assert "  - resnet56-s1: iterations 1-200: not recorded\n" in md


def test_a_real_run_names_its_machine_in_every_metrics_row(tiny_data, tmp_path):
    from reslearn.speed import kernel_key

    run = train(train_cfg(tiny_data, tmp_path / "r", iterations=12))
    rows = read_metrics(run)
    assert len(rows) == 2 and all(r["ran_on"].startswith("cpu: ") for r in rows)
    # torch, CPU capability and flags, L2 (then the run's own thread count)
    assert kernel_key().rsplit(" threads=", 1)[0] + " threads=" in rows[0]["ran_on"]


def test_depth_trend_says_when_the_deeper_net_trails(tmp_path):
    _fake_run(tmp_path, "resnet20", 1, [0] * 4, [50, 30, 25, 20])
    _fake_run(tmp_path, "resnet56", 1, [0] * 4, [60, 29, 26, 21])  # ahead once, behind at the end
    _fake_run(tmp_path, "resnet110", 1, [0] * 3, [70, 40, 30])  # the deepest: it is compared
    trend = depth_trend(collect_runs(tmp_path))
    assert trend.other == "resnet110" and len(trend.rows) == 3  # evaluations both nets have
    assert trend.summary() == (
        "resnet110 against resnet20: behind at every evaluation: the curves do not cross "
        "(gap +20.00 points at 100, narrowest +5.00 at 300, +5.00 at the end, 300)"
    )
    md = write_report(tmp_path).read_text()  # each deeper net against the shallowest; resnet110's table
    assert "## Depth over training: each deeper ResNet against resnet20" in md
    assert "\n- resnet56 against resnet20: ahead at 1 of 4 evaluations" in md
    assert "\n- resnet110 against resnet20: behind at every evaluation" in md
    assert "| 300 | 0.1 | 25.00 | 30.00 | +5.00 |" in md and "| 400 |" not in md
    shutil.rmtree(tmp_path / "resnet110-s1")
    assert depth_trend(collect_runs(tmp_path)).summary() == (
        "resnet56 against resnet20: ahead at 1 of 4 evaluations (first at 200), behind again at "
        "the end (gap +10.00 points at 100, narrowest -1.00 at 200, +1.00 at the end, 400)"
    )


def test_verdicts_say_no_when_the_numbers_say_no(tmp_path):
    _fake_run(tmp_path, "plain20", 1, [40, 30], [40, 31], responses=[1.0, 1.0])
    _fake_run(tmp_path, "plain56", 1, [40, 20], [40, 25], responses=[1.0, 1.0])
    _fake_run(tmp_path, "resnet20", 1, [40, 20], [40, 25], responses=[2.0, 2.0])
    _fake_run(tmp_path, "resnet56", 1, [40, 25], [40, 24], responses=[0.5, 0.5])
    runs = collect_runs(tmp_path)
    v = verdicts(runs, summarize(runs))
    assert v[0].startswith("deeper plain net has higher training error: no")
    assert v[1].startswith("deeper ResNet has lower training/test error: no")
    assert v[2].startswith("ResNet responses smaller than plain: no")


def test_verdicts_say_when_the_seeds_do_not_separate_two_nets(tmp_path):
    # resnet20 seeds end at train 20/24 (range 4), resnet56 at 21/22: the means differ by
    # 0.5 points, well inside one net's own seed range, so "yes" comes with that caveat;
    # the test errors (30/31 against 20/21) are separated by 10 points > range 1.
    _fake_run(tmp_path, "resnet20", 1, [40, 20], [40, 30])
    _fake_run(tmp_path, "resnet20", 2, [40, 24], [40, 31])
    _fake_run(tmp_path, "resnet56", 1, [40, 21], [40, 20])
    _fake_run(tmp_path, "resnet56", 2, [40, 22], [40, 21])
    runs = collect_runs(tmp_path)
    v = verdicts(runs, summarize(runs))
    assert v[1] == (
        "deeper ResNet has lower training/test error: yes (resnet56 train 21.50% / test 20.50% vs "
        "resnet20 train 22.00% / test 30.50%; train gap 0.50 points within the seed range 4.00: "
        "these seeds do not separate them; test gap 10.00 points > seed range 1.00)"
    )


def test_arms_are_compared_over_the_seeds_both_finished(tmp_path):
    # bn64 finished seeds 1 and 2, paper only seed 1 (seed 2 still training): the mean of
    # bn64's two seeds against paper's one (10.73 - 10.31 = +0.42) would set one seed's luck
    # against another's; the paired difference over seed 1 is -0.58.
    _fake_run(tmp_path, "resnet56", 1, [40, 5], [40, 10.31], arm="paper")
    _fake_run(tmp_path, "resnet56", 2, [40, 6], [40, 12.0], arm="paper", finished=False)
    _fake_run(tmp_path, "resnet56", 1, [40, 5], [40, 9.73], arm="bn64")
    _fake_run(tmp_path, "resnet56", 2, [40, 5], [40, 11.73], arm="bn64")
    _fake_run(tmp_path, "resnet56", 3, [40, 5], [40, 9.0], arm="fp32")
    runs = collect_runs(tmp_path)
    assert verdicts(runs, summarize(runs)) == [
        "resnet56 [bn64] - resnet56 [paper]: -0.58 points of held-out error (seed 1: 9.73% vs 10.31%; "
        "seed 2 finished in one arm only, left out)",
        "resnet56 [fp32] - resnet56 [paper]: not compared yet (no seed finished in both)",
    ]
    # Both seeds finished in both arms: each seed's difference and the seed range.
    (tmp_path / "resnet56-paper-s2").rename(tmp_path / "old")
    _fake_run(tmp_path, "resnet56", 2, [40, 6], [40, 12.01], arm="paper")
    runs = collect_runs(tmp_path)
    assert verdicts(runs, summarize(runs))[0] == (
        "resnet56 [bn64] - resnet56 [paper]: -0.43 points of held-out error (mean of seeds 1, 2: "
        "10.73% vs 11.16%; each seed: -0.58, -0.28, the same sign in every seed; test gap 0.43 "
        "points within the seed range 2.00: these seeds do not separate them)"
    )


def test_an_arms_report_follows_each_seed_against_the_reference_arms_same_seed(tmp_path, monkeypatch):
    # Seed 1 finished in both arms; seed 2 of bn64 is two evaluations further than paper's:
    # the pair is compared where both have evaluated. fp32 has no seed that paper has.
    _fake_run(tmp_path, "resnet56", 1, [0] * 4, [50, 30, 20, 10.31], arm="paper")
    _fake_run(tmp_path, "resnet56", 1, [0] * 4, [52, 29, 19, 9.73], arm="bn64")
    _fake_run(tmp_path, "resnet56", 2, [0] * 2, [60, 31], arm="paper", finished=False)
    _fake_run(tmp_path, "resnet56", 2, [0] * 4, [47, 32, 21, 9.0], arm="bn64", finished=False)
    _fake_run(tmp_path, "resnet56", 3, [0] * 2, [55, 33], arm="fp32", finished=False)
    # A 45k arm holds 5,000 training images out: the test set only at its end.
    d = _fake_run(tmp_path, "resnet56", 1, [0] * 4, [5, 5, 5, 10.0], arm="45k")
    rows = [json.loads(ln) for ln in (d / "metrics.jsonl").read_text().splitlines()]
    for row in rows[:-1]:
        row["val_err"] = row.pop("test_err")
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    md = write_report(tmp_path).read_text()
    # its validation errors (5%) are not set against paper's test errors; its end is
    assert (
        "- resnet56 [45k] seed 1 ahead of resnet56 [paper] seed 1 from iteration 400 on "
        "(gap -0.31 points at 400, -0.31 at 400)\n"
    ) in md
    assert "## Arms over training" in md and "## Depth over training" not in md
    assert (
        "- resnet56 [bn64] seed 1 ahead of resnet56 [paper] seed 1 from iteration 200 on "
        "(gap +2.00 points at 100, -0.58 at 400)\n"
        "- resnet56 [bn64] seed 2 against resnet56 [paper] seed 2: ahead at 1 of 2 evaluations "
        "(first at 100), behind again at the end (gap -13.00 points at 100, narrowest -13.00 at 100, "
        "+1.00 at the end, 200)\n"
    ) in md
    assert "[fp32]" not in md.split("## Arms over training")[1]  # no seed of it to pair
    # Figure 6 draws the 45k arm's validation curve and its test error at the end as a dot
    figs = []
    monkeypatch.setattr(report_mod, "_save", lambda fig, path: figs.append(fig))
    plot_training_curves([r for r in collect_runs(tmp_path) if r.arm == "45k"], tmp_path / "f.png")
    ax = figs[0].axes[0]
    assert [list(ln.get_ydata()) for ln in ax.lines if ln.get_marker() == "o"] == [[10.0]]
    assert [5, 5, 5] in [list(ln.get_ydata()) for ln in ax.lines if ln.get_linestyle() == "-"]
    assert ax.get_legend().get_title().get_text() == "dashed: training, bold: held-out, dot: test"


def study_argv(out, data, models="cifar_plain8,cifar_resnet8", study="cifar", *more):
    """``reslearn reproduce`` of tiny nets for 8 iterations on ``data`` (train flags apply)."""
    return ["reproduce", study, "--out", str(out), "--models", models, "--iterations", "8",
            "--data-dir", str(data), "--no-download", "--batch-size", "128", "--eval-every", "4",
            "--device", "cpu", "--progress", "none", "--no-tensorboard", *more]  # fmt: skip


def test_reproduce_skips_finished_and_resumes_interrupted(tmp_path, capsys):
    from reslearn.train import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, train

    data = write_pickle_cifar(tmp_path / "c10", per_batch=40, test=60)
    out = tmp_path / "study"
    # A half-finished study: cifar_plain8-s1 interrupted after 4 of 8 iterations.
    cfg = TrainConfig(
        ModelConfig("cifar_plain8"),
        DataConfig(str(data), download=False),
        OptimConfig(batch_size=128, iterations=8),
        RunConfig(
            out=str(out / "cifar_plain8-s1"),
            seed=1,
            device="cpu",
            progress="none",
            eval_every=4,
            tensorboard=False,
        ),
    )
    train(cfg, stop_after=4)
    # The command line lies over every run: a change of experiment on the stopped run is
    # refused, naming the flag, not silently ignored.
    assert cli_main(study_argv(out, data, "cifar_plain8", "cifar", "--lr", "0.2")) == 2
    assert "--lr cannot change on --resume" in capsys.readouterr().err
    assert cli_main(study_argv(out, data)) == 0
    said = [x for x in capsys.readouterr().out.splitlines() if x.startswith("[")]
    assert said == [f"[resume] {out / 'cifar_plain8-s1'}", f"[train] {out / 'cifar_resnet8-s1'}"]
    assert [r["iteration"] for r in read_metrics(out / "cifar_plain8-s1")] == [4, 8]
    assert (out / "cifar_plain8-s1" / "responses.json").exists() and (out / "report.md").exists()
    assert cli_main(study_argv(out, data)) == 0
    said = [x for x in capsys.readouterr().out.splitlines() if x.startswith("[")]
    assert said == [f"[skip] {out / n} is finished" for n in ("cifar_plain8-s1", "cifar_resnet8-s1")]
    assert cli_main(["report", str(out)]) == 0
    assert (
        cli_main(
            ["responses", str(out / "cifar_resnet8-s1"), "--device", "cpu", "--out", str(tmp_path / "r.json")]
        )
        == 0
    )
    res = json.loads((tmp_path / "r.json").read_text())
    assert len(res[0]["std"]) == 7 and res[0]["sorted"] == sorted(res[0]["std"], reverse=True)


def test_every_study_is_a_valid_config_for_each_run():
    from reslearn.reproduce import STUDIES
    from reslearn.train import TrainConfig
    from reslearn.train.config import apply_layers

    for study in STUDIES.values():
        runs = study.runs()
        assert (
            len({r.name for r in runs})
            == len(runs)
            == len(study.models) * len(study.seeds) * max(1, len(study.arms))
        )
        for r in runs:
            cfg = apply_layers(TrainConfig(), [dict(r.settings), {"model.name": r.model, "run.seed": r.seed}])
            assert cfg.model.name == r.model


def test_a_study_added_here_trains_its_arms_and_compares_them(tmp_path, monkeypatch, capsys):
    from reslearn.reproduce import STUDIES, Study

    # One registry entry: a study of two arms (the second doubles the learning rate).
    study = Study(
        "tiny-arms",
        "two learning rates",
        ("cifar_resnet8",),
        (1, 2),
        arms={"paper": {}, "lr2": {"optim.lr": 0.2}},
    )
    monkeypatch.setitem(STUDIES, study.name, study)
    data = write_pickle_cifar(tmp_path / "c10", per_batch=40, test=60)
    out = tmp_path / "arms"
    assert cli_main(study_argv(out, data, "cifar_resnet8", "tiny-arms", "--list")) == 0
    assert capsys.readouterr().out.split() == [
        "cifar_resnet8-paper-s1", "not", "started", "cifar_resnet8-lr2-s1", "not", "started",
        "cifar_resnet8-paper-s2", "not", "started", "cifar_resnet8-lr2-s2", "not", "started",
    ]  # fmt: skip
    # --arms picks some of them (a cheaper question); an arm the study lacks is named.
    assert cli_main(study_argv(out, data, "cifar_resnet8", "tiny-arms", "--list", "--arms", "lr2")) == 0
    assert capsys.readouterr().out.split()[::3] == ["cifar_resnet8-lr2-s1", "cifar_resnet8-lr2-s2"]
    assert cli_main(study_argv(out, data, "cifar_resnet8", "tiny-arms", "--list", "--arms", "lr3")) == 2
    assert (
        "--arms 'lr3' is not an arm of the tiny-arms study (its arms: paper, lr2)" in capsys.readouterr().err
    )
    assert cli_main(study_argv(out, data, "cifar_resnet8", "cifar", "--list", "--arms", "paper")) == 2
    assert "not an arm of the cifar study (it has none)" in capsys.readouterr().err
    assert cli_main(study_argv(out, data, "cifar_resnet8", "tiny-arms")) == 0
    lrs = {r.dir.name: r.config["optim"]["lr"] for r in collect_runs(out)}
    assert lrs == {
        "cifar_resnet8-lr2-s1": 0.2,
        "cifar_resnet8-lr2-s2": 0.2,
        "cifar_resnet8-paper-s1": 0.1,
        "cifar_resnet8-paper-s2": 0.1,
    }
    report = (out / "report.md").read_text()
    assert "| cifar_resnet8 [lr2] |" in report and "| cifar_resnet8 [paper] |" in report
    assert "- cifar_resnet8 [lr2] - cifar_resnet8 [paper]: " in report  # the arm against the reference
    assert not (out / "cifar_resnet8-paper-s1" / "responses.json").exists()  # the study asks none


def test_reproduce_parallel_shares_the_runs_between_processes(tmp_path, capsys):
    data = write_pickle_cifar(tmp_path / "c10", per_batch=40, test=60)
    out = tmp_path / "par"
    assert cli_main(study_argv(out, data, "cifar_plain8,cifar_resnet8", "cifar", "--parallel", "2")) == 0
    for name in ("cifar_plain8-s1", "cifar_resnet8-s1"):
        rows = read_metrics(out / name)
        assert [r["iteration"] for r in rows] == [4, 8]  # each trained once, by one process
    assert "report:" in capsys.readouterr().out and (out / "report.md").exists()
    assert cli_main(study_argv(out, data, "cifar_plain8", "cifar", "--parallel", "0")) == 2
    assert "--parallel must be a positive integer, got 0" in capsys.readouterr().err


def test_a_signal_stops_a_study_and_says_to_rerun_the_study(tmp_path, monkeypatch, capsys):
    """SIGTERM during a study's run: the run keeps its checkpoint and the message names the
    study's command (not ``train --resume``), which then continues from that checkpoint."""
    import signal

    from reslearn.train import TrainStep

    data = write_pickle_cifar(tmp_path / "c10", per_batch=40, test=60)
    out = tmp_path / "study"
    step, calls = TrainStep.__call__, {"n": 0}

    def signalling_step(self, x, y):
        res = step(self, x, y)
        calls["n"] += 1
        if calls["n"] == 3:
            signal.raise_signal(signal.SIGTERM)  # the handler runs before this returns
        return res

    monkeypatch.setattr(TrainStep, "__call__", signalling_step)
    assert cli_main(study_argv(out, data, "cifar_resnet8")) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "at iteration 3;" in err and "the same reslearn reproduce command continues" in err
    assert "--resume" not in err and str(out / "cifar_resnet8-s1") in err
    monkeypatch.setattr(TrainStep, "__call__", step)
    assert cli_main(study_argv(out, data, "cifar_resnet8")) == 0
    assert f"[resume] {out / 'cifar_resnet8-s1'}" in capsys.readouterr().out
    assert [r["iteration"] for r in read_metrics(out / "cifar_resnet8-s1")] == [4, 8]


def test_a_run_another_process_took_meanwhile_is_left_to_it(tmp_path, monkeypatch, capsys):
    """--parallel: a process looks at a run (no checkpoint yet: new), and by the time it
    holds the run's lock another has trained it. That is the lock deciding, not an error:
    the process says busy and goes on to the next run (the race, made to happen here)."""
    from reslearn.train import launch

    data = write_pickle_cifar(tmp_path / "c10", per_batch=40, test=60)
    out = tmp_path / "study"
    assert cli_main(study_argv(out, data, "cifar_resnet8", "cifar", "--iterations", "4")) == 0
    (out / "cifar_resnet8-s1" / "final.json").unlink()  # as if still training: a checkpoint, no end
    capsys.readouterr()
    monkeypatch.setattr(launch, "auto_resume", lambda layers: (None, layers))  # the stale look: "new"
    assert cli_main(study_argv(out, data, "cifar_resnet8,cifar_plain8", "cifar", "--iterations", "4")) == 0
    said = [x for x in capsys.readouterr().out.splitlines() if x.startswith("[")]
    assert said[1:] == [f"[busy] {out / 'cifar_resnet8-s1'}: another process trains it",
                        f"[train] {out / 'cifar_plain8-s1'}"]  # fmt: skip
    assert [r["iteration"] for r in read_metrics(out / "cifar_resnet8-s1")] == [4]  # left alone
