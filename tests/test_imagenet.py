"""The ImageNet data set and recipe: augmentation, test views, class index, bad images."""

import json
import math

import pytest
import torch

from reslearn import create_model
from reslearn.cli import main as cli_main
from reslearn.data.augment import IMAGENET_EIGVAL, IMAGENET_EIGVEC, pca_lighting, scale_crop_flip
from reslearn.data.imagefiles import DataError
from reslearn.data.imagenet import ImageNetData, list_split, read_class_index
from reslearn.evaluate.views import center_view, fully_convolutional_logits, multiscale, ten_crop
from reslearn.models import get_model_spec
from reslearn.train import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, read_metrics, train
from reslearn.train.recipes import resolve
from reslearn.train.schedules import Plateau, make_schedule

from .helpers import IMAGENET_WNIDS, write_imagenet_folder

CPU = torch.device("cpu")


@pytest.fixture
def inet(tmp_path):
    return write_imagenet_folder(tmp_path / "inet")


@pytest.fixture
def class_index(tmp_path):
    """A 6-class index in which the folders' wnids sit at 1, 3 and 5."""
    rows = ["index\twnid\tname"]
    names = ["a", IMAGENET_WNIDS[0], "b", IMAGENET_WNIDS[1], "c", IMAGENET_WNIDS[2]]
    for i, w in enumerate(names):
        rows.append(f"{i}\t{w if w.startswith('n') else 'n9999999' + str(i)}\tname{i}")
    p = tmp_path / "classes.tsv"
    p.write_text("\n".join(rows) + "\n")
    return p


# ---------------------------------------------------------------- augmentation
def test_scale_crop_flip_sizes_ranges_and_randomness():
    img = torch.randint(0, 256, (3, 375, 500), dtype=torch.uint8)
    outs = []
    for seed in range(8):
        g = torch.Generator().manual_seed(seed)
        shorter = int(torch.randint(256, 481, (1,), generator=g))
        x = scale_crop_flip(img, shorter, 224, g)
        assert x.shape == (3, 224, 224) and x.dtype == torch.uint8
        outs.append(x)
    assert len({o.float().sum().item() for o in outs}) == 8  # every sample its own crop
    again = scale_crop_flip(img, 300, 224, torch.Generator().manual_seed(5))
    assert torch.equal(again, scale_crop_flip(img, 300, 224, torch.Generator().manual_seed(5)))
    with pytest.raises(ValueError, match="smaller than the crop"):
        scale_crop_flip(img, 100, 224)


def test_pca_lighting_statistics():
    """Offsets are V (alpha * lambda) with alpha ~ N(0, 0.1): their covariance is
    V diag((0.1 lambda)^2) V^T, constant over each image."""
    torch.manual_seed(0)
    x = torch.zeros(40_000, 3, 2, 2, dtype=torch.float64)
    out = pca_lighting(x, 0.1, torch.Generator().manual_seed(1))
    assert torch.equal(out[:, :, 0, 0], out[:, :, 1, 1])  # one offset per image
    off = out[:, :, 0, 0]
    v = torch.tensor(IMAGENET_EIGVEC, dtype=torch.float64)
    lam = torch.tensor(IMAGENET_EIGVAL, dtype=torch.float64)
    expected = v @ torch.diag((0.1 * lam) ** 2) @ v.T
    cov = off.T @ off / len(off)
    assert torch.allclose(cov, expected, atol=0.03 * expected.abs().max().item())
    assert off.mean(0).abs().max() < 3 * 0.1 * lam[0] / math.sqrt(len(off)) * 3
    assert torch.equal(pca_lighting(x[:4], 0.0), x[:4])


# ---------------------------------------------------------------- views
def _known(h=256, w=300):
    """An image whose pixels say where they are: x[c, i, j] = c * 1e6 + i * 1000 + j."""
    c = torch.arange(3, dtype=torch.float64)[:, None, None] * 1e6
    i = torch.arange(h, dtype=torch.float64)[None, :, None] * 1000
    j = torch.arange(w, dtype=torch.float64)[None, None, :]
    return (c + i + j)[None]


def test_ten_crop_takes_the_right_windows():
    x = _known()  # shorter side already 256: the resize is the identity
    views = ten_crop(x)
    assert len(views) == 10 and all(v.shape == (1, 3, 224, 224) for v in views)
    corners = {"tl": (0, 0), "tr": (0, 300 - 224), "bl": (256 - 224, 0), "br": (256 - 224, 300 - 224)}
    for v, (top, left) in zip(views[:4], corners.values()):
        assert v[0, 0, 0, 0].item() == top * 1000 + left
        assert v[0, 0, -1, -1].item() == (top + 223) * 1000 + left + 223
    centre = views[4][0, 0]
    assert centre[0, 0].item() == 16 * 1000 + 38 and centre.shape == (224, 224)
    for a, b in zip(views[:5], views[5:]):
        assert torch.equal(b, a.flip(-1))
    assert torch.equal(center_view(x)[0], views[4])


def test_multiscale_sizes_and_fully_convolutional_equals_forward():
    x = torch.rand(1, 3, 300, 400)
    views = multiscale(x)
    assert [min(v.shape[-2:]) for v in views] == [224, 224, 256, 256, 384, 384, 480, 480, 640, 640]
    assert views[1].shape == views[0].shape and torch.equal(views[1], views[0].flip(-1))
    torch.manual_seed(0)
    m = create_model("resnet18").eval()
    with torch.no_grad():
        for size in (224, 160):
            img = torch.randn(2, 3, size, size)
            assert torch.allclose(fully_convolutional_logits(m, img), m(img), atol=1e-4)


# ---------------------------------------------------------------- classes and files
def test_class_index_labels_a_subset_folder_in_the_standard_order(inet, class_index):
    index = read_class_index(class_index)
    items, classes = list_split(inet / "train", index)
    assert len(classes) == 6 and classes[1] == "name1"
    assert sorted({y for _, y in items}) == [1, 3, 5]
    items2, classes2 = list_split(inet / "train", None)
    assert classes2 == IMAGENET_WNIDS and sorted({y for _, y in items2}) == [0, 1, 2]


def test_class_index_errors(tmp_path, inet):
    bad = tmp_path / "dup.tsv"
    bad.write_text("0\tn1\ta\n1\tn1\tb\n")
    with pytest.raises(DataError, match="more than once.*n1"):
        read_class_index(bad)
    gap = tmp_path / "gap.tsv"
    gap.write_text("0\tn1\ta\n2\tn2\tb\n")
    with pytest.raises(DataError, match="gap.tsv' line 2: expected '1<TAB>"):  # the file's own line numbers
        read_class_index(gap)
    gap.write_text("index\twnid\tname\n\n0\tn1\ta\n2\tn2\tb\n")  # a header and a blank line
    with pytest.raises(DataError, match="gap.tsv' line 4: "):
        read_class_index(gap)
    other = tmp_path / "other.tsv"
    other.write_text("0\tn0000001\ta\n")
    with pytest.raises(DataError, match="missing from the class index.*n01440764"):
        list_split(inet / "train", read_class_index(other))


def test_the_shared_class_list_reads(shared_data):
    index = read_class_index(shared_data / "imagenet-classes.tsv")
    assert len(index.wnids) == 1000 and index.wnids[0] == "n01440764" and index.names[1] == "goldfish"


def _data(root, workers=0, **kw):
    return ImageNetData(root, batch_size=4, seed=1, device=CPU, image_size=32, workers=workers, **kw)


def test_batches_do_not_depend_on_the_worker_count(inet):
    a, b = _data(inet, workers=0), _data(inet, workers=2)
    assert a.scale == (37, 69)  # [256, 480] scaled to 32x32 crops
    (xa, ya), (xb, yb) = next(a.batches(0, 0)), next(b.batches(0, 0))
    assert xa.shape == (4, 3, 32, 32) and xa.dtype == torch.float32
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert a.normalizer.mean.shape == (3, 32, 32)  # the per-pixel mean image
    c = _data(inet, normalize="channel")
    assert c.normalizer.mean.shape == (3, 1, 1) and c.normalizer.std[0].item() == pytest.approx(0.229)


def test_a_corrupt_jpeg_is_named_and_can_be_skipped(inet, tmp_path):
    bad = inet / "train" / IMAGENET_WNIDS[0] / "broken.JPEG"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match="broken.JPEG"):
        for _ in _data(inet, mean_sample=1).batches(0, 0):
            pass
    d = _data(inet, skip_bad_images=True)
    bad_i = [p for p, _ in d.items].index(bad)
    seen = 0
    for epoch in range(3):  # 13 files: 3 batches of 4 planned an epoch
        planned = int(bad_i in d.epoch_indices(epoch)[:12].tolist())
        assert sum(len(y) for _, y in d.batches(epoch, 0)) == 12 - planned
        seen += planned
        assert d.skipped == seen
    assert seen >= 1
    cfg = _cfg(inet, tmp_path / "skip", iterations=3)
    cfg.data.skip_bad_images = True
    rows = read_metrics(train(cfg))
    assert rows[-1]["skipped_images"] >= 0 and "skipped_images" in rows[0]


# ---------------------------------------------------------------- recipe and training
def _cfg(root, out, iterations=4, model="resnet18", **optim):
    return TrainConfig(
        ModelConfig(model),
        DataConfig(str(root), image_size=32, workers=1),
        OptimConfig(batch_size=4, iterations=iterations, **optim),
        RunConfig(
            out=str(out), device="cpu", progress="none", tensorboard=False, eval_every=2, eval_batch_size=8
        ),
    )


def test_recipe_is_chosen_from_the_net_and_the_data(inet, tiny_data):
    r = resolve(TrainConfig(ModelConfig("resnet18"), DataConfig(str(inet))), get_model_spec("resnet18"))
    assert (r.optim.recipe, r.optim.batch_size, r.optim.iterations, r.optim.schedule) == (
        "imagenet",
        256,
        600_000,
        "plateau",
    )
    assert (r.data.loader, r.data.image_size) == ("stream", 224)
    c = resolve(TrainConfig(ModelConfig("resnet20"), DataConfig(str(tiny_data))), get_model_spec("resnet20"))
    assert (c.optim.recipe, c.optim.batch_size, c.optim.iterations, c.optim.schedule, c.data.loader) == (
        "cifar",
        128,
        64_000,
        "milestones",
        "device",
    )
    s = resolve(
        TrainConfig(ModelConfig("resnet18"), DataConfig(str(inet)), OptimConfig(schedule="step")),
        get_model_spec("resnet18"),
    )
    assert (s.optim.epochs, s.optim.iterations) == (90, None)
    step = make_schedule(OptimConfig(schedule="step", step_epochs=30), 900, 10, warm_up=False)
    assert step.at == [300, 600]
    with pytest.raises(ValueError, match="streams"):
        resolve(
            TrainConfig(ModelConfig("resnet18"), DataConfig(str(inet), loader="device")),
            get_model_spec("resnet18"),
        )
    with pytest.raises(ValueError, match="image_size"):
        resolve(
            TrainConfig(ModelConfig("resnet20"), DataConfig(str(tiny_data), image_size=64)),
            get_model_spec("resnet20"),
        )


def test_plateau_divides_lr_after_patience():
    p = Plateau(0.1, patience=2, threshold=0.5)
    drops = [p.observe_eval(e, 7) is not None for e in (50, 40, 39.8, 39.9, 30, 30, 30)]
    assert drops == [False, False, False, True, False, False, True]
    assert p.drops == 2 and p.lr(0) == pytest.approx(0.001)


def test_dali_without_dali_says_how_to_install(inet, tmp_path, monkeypatch):
    import reslearn.data.dali as dali

    monkeypatch.setattr(dali, "dali_available", lambda: False)  # as on a machine without it
    cfg = _cfg(inet, tmp_path / "d")
    cfg.data.loader = "dali"
    with pytest.raises(ValueError, match="pip install 'reslearn\\[dali\\]'"):
        train(cfg)
    assert not (tmp_path / "d").exists()


@pytest.mark.skipif(
    not __import__("reslearn.data.dali").data.dali.dali_available(), reason="NVIDIA DALI not installed"
)
def test_dali_pipeline_gives_the_papers_crops_in_our_order(inet, tmp_path):
    """DALI's CPU backend here (nvJPEG "mixed" decoding on CUDA): the images of each batch
    are the ones the default loader would take, at the crop size, reproducible by epoch."""
    from reslearn.data.dali import DaliImageNetData

    kw = dict(batch_size=4, seed=1, device=CPU, image_size=32, workers=1)
    d, ref = DaliImageNetData(inet, **kw), ImageNetData(inet, **kw)
    got = list(d.batches(0, 0))
    want = list(ref.batches(0, 0))
    assert len(got) == len(want) == 3
    for (x, y), (_, y_ref) in zip(got, want):
        assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and torch.equal(y, y_ref)
    again = list(DaliImageNetData(inet, **kw).batches(0, 0))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(got, again))
    assert list(d.batches(0, 2))[0][1].tolist() == want[2][1].tolist()  # resumes at a step
    cfg = _cfg(inet, tmp_path / "dali", iterations=3)
    cfg.data.loader = "dali"
    assert [r["iteration"] for r in read_metrics(train(cfg))] == [2, 3]


def test_imagenet_training_resumes_exactly_and_evaluates_with_every_view(inet, tmp_path, capsys, class_index):
    cfg = _cfg(inet, tmp_path / "full")
    cfg.data.class_index = str(class_index)
    full = train(cfg)
    part = _cfg(inet, tmp_path / "part")
    part.data.class_index = str(class_index)
    train(part, stop_after=2)
    train(resume=tmp_path / "part")
    a, b = read_metrics(full), read_metrics(tmp_path / "part")
    assert [r["iteration"] for r in a] == [2, 4] and "val_err" in a[0] and "test_err" not in a[0]
    for ra, rb in zip(a, b):
        assert {k: v for k, v in ra.items() if k not in ("images_per_s", "wall_s")} == {
            k: v for k, v in rb.items() if k not in ("images_per_s", "wall_s")
        }
    assert json.loads((full / "final.json").read_text())["val_err"] == a[-1]["val_err"]
    for views in ("single", "10crop", "multiscale"):
        assert (
            cli_main(["eval", str(full), "--views", views, "--json", "--device", "cpu", "--workers", "1"])
            == 0
        )
        res = json.loads(capsys.readouterr().out)
        assert res["views"] == views and res["images"] == 6 and res["split"] == "val"
        assert 0 <= res["top5_err"] <= res["top1_err"] <= 100
    # The single view of eval equals the run's own last validation.
    assert cli_main(["eval", str(full), "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["top1_err"] == pytest.approx(a[-1]["val_err"])


def test_reproduce_imagenet_writes_figure_4(inet, tmp_path, capsys):
    out = tmp_path / "fig4"
    argv = [
        "reproduce",
        "imagenet",
        "--out",
        str(out),
        "--models",
        "plain18,resnet18",
        "--data-dir",
        str(inet),
        "--iterations",
        "2",
        "--image-size",
        "32",
        "--batch-size",
        "4",
        "--device",
        "cpu",
    ]
    assert cli_main(argv) == 0
    report = (out / "report.md").read_text()
    assert "Figure 4" in report and (out / "fig4_training_curves.png").stat().st_size > 1000
    assert "| plain18 |" in report and "27.94" in report  # the paper's Table 2 beside ours
    assert "training crop 32 px" in report
    assert cli_main(["reproduce", "imagenet", "--out", str(tmp_path / "x"), "--models", "resnet20"]) == 2
    assert "CIFAR net" in capsys.readouterr().err


def test_figure_4_verdicts_from_synthetic_runs(tmp_path):
    from reslearn.reproduce import collect_runs, summarize, verdicts

    for model, tr in (("plain18", 30.0), ("plain34", 35.0), ("resnet18", 29.0), ("resnet34", 25.0)):
        d = tmp_path / f"{model}-s1"
        d.mkdir()
        cfg = {
            "model": {"name": model},
            "run": {"seed": 1},
            "optim": {"iterations": 10, "batch_size": 256},
            "data": {"data_dir": "/data/inet", "image_size": 112},
        }
        (d / "config.json").write_text(json.dumps(cfg))
        row = {"iteration": 10, "train_err": tr, "val_err": tr + 1, "lr": 0.1, "loss": 1.0}
        (d / "metrics.jsonl").write_text(json.dumps(row) + "\n")
        (d / "final.json").write_text(json.dumps({"train_err": tr, "test_err": None, "val_err": tr + 1}))
    runs = collect_runs(tmp_path)
    v = verdicts(runs, summarize(runs))
    assert v[0].startswith(
        "deeper plain net has higher training error: yes (plain34 35.00% vs plain18 30.00%)"
    )
    assert v[1].startswith("deeper ResNet has lower training/test error: yes")
