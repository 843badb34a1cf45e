"""Fine-tuning: --init from a run, an export or torchvision weights; --freeze-to; --head-lr;
exact resume; the new data's classes; one-line errors."""

import json

import pytest
import torch
import torchvision

import reslearn
from reslearn.checkpoint import load_checkpoint
from reslearn.cli import main as cli_main
from reslearn.train import train

from .helpers import publish_in, rows, train_cfg, write_imagefolder, write_imagenet_folder


@pytest.fixture
def source(tiny_data, tmp_path):
    """A trained 10-class cifar_resnet8 (the weights to start from)."""
    return train(train_cfg(tiny_data, tmp_path / "source", iterations=6))


@pytest.fixture
def pets(tmp_path):
    """A 3-class image-folder tree the source never saw (32x32, train/ and test/)."""
    return write_imagefolder(tmp_path / "pets", per_class=12)


def finetune_cfg(pets, out, source, **optim):
    cfg = train_cfg(pets, out, iterations=8, batch=12, amp="off", channels_last=False)
    return cfg.replace({"model.init": str(source), "model.freeze_to": "layer2", **optim})


@pytest.mark.parametrize("bn_splits", [1, 2])  # BN replaced by SplitBatchNorm2d stays frozen
def test_finetune_loads_matching_layers_freezes_and_gives_the_head_its_lr(
    source, pets, tmp_path, capsys, bn_splits
):
    more = {"optim.head_lr": 0.05, "run.progress": "log", "run.bn_splits": bn_splits}
    cfg = finetune_cfg(pets, tmp_path / "ft", source, **more)
    run = train(cfg)
    log = capsys.readouterr().out
    assert "replaced (new, freshly initialised): fc.bias, fc.weight" in log
    assert "frozen (weights and BatchNorm statistics): conv1, bn1, layer1, layer2" in log
    src, ft = load_checkpoint(source), load_checkpoint(run)
    assert ft.classes == ["cat", "dog", "frog"] and ft.model["fc.weight"].shape == (3, 64)
    for k, v in src.model.items():  # frozen: weights and BN statistics as the source's
        if k.split(".")[0] in ("conv1", "bn1", "layer1", "layer2"):
            assert torch.equal(ft.model[k], v), k
    assert not torch.equal(ft.model["layer3.0.conv1.weight"], src.model["layer3.0.conv1.weight"])
    assert torch.equal(ft.preprocessing["mean"], src.preprocessing["mean"])  # the source's normalisation
    assert ft.train_state["init"]["source"] == str(source) and ft.provenance["init"] == str(source)
    groups = ft.optimizer["param_groups"]
    assert sorted(g.get("lr_scale", 1.0) for g in groups) == [0.5, 1.0]  # head_lr 0.05 / lr 0.1
    head = next(g for g in groups if "lr_scale" in g)
    assert head["lr"] == pytest.approx(0.05 * ft.optimizer["param_groups"][0]["lr"] / 0.1)
    assert len(head["params"]) == 2  # fc.weight, fc.bias


def test_finetune_resumes_exactly_and_is_used_with_its_own_classes(source, pets, tmp_path, capsys):
    cfg = finetune_cfg(pets, tmp_path / "a", source, **{"optim.head_lr": 0.05})
    a = train(cfg, stop_after=4)
    source.rename(tmp_path / "moved")  # a resumed run does not read --init again
    train(resume=a)
    (tmp_path / "moved").rename(source)
    b = train(finetune_cfg(pets, tmp_path / "b", source, **{"optim.head_lr": 0.05}))
    assert rows(a) == rows(b)
    model, _, classes = reslearn.load(a)
    assert classes == ["cat", "dog", "frog"]
    assert cli_main(["predict", str(a), str(pets / "test" / "dog"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {r["top_k"][0]["class"] for r in out} <= {"cat", "dog", "frog"}
    assert (
        cli_main(["export", str(a), "--format", "safetensors", "--out", str(tmp_path / "a.safetensors")]) == 0
    )
    assert reslearn.load(tmp_path / "a.safetensors")[2] == classes
    # An export is a valid --init too.
    c = train(
        finetune_cfg(pets, tmp_path / "c", tmp_path / "a.safetensors").replace({"model.freeze_to": "none"})
    )
    assert load_checkpoint(c).train_state["init"]["replaced"] == []  # same classes: everything loaded


def test_a_published_net_starts_a_finetuning_run_by_name(source, pets, tmp_path, monkeypatch):
    """--init NAME: a net from `reslearn zoo`, its file checked against its sha256 first."""
    from reslearn.checkpoint import CheckpointError

    f = publish_in(tmp_path / "weights", source, "src-net", monkeypatch)
    run = train(finetune_cfg(pets, tmp_path / "ft", "src-net"))
    init = load_checkpoint(run).train_state["init"]
    assert init["replaced"] == ["fc.bias", "fc.weight"] and init["loaded"] > 0
    f.write_bytes(f.read_bytes()[:-1] + bytes([f.read_bytes()[-1] ^ 1]))  # one flipped bit
    with pytest.raises(CheckpointError, match="does not match its published sha256"):
        train(finetune_cfg(pets, tmp_path / "ft2", "src-net"))


def test_torchvision_weights_start_an_imagenet_net_with_their_normalisation(tmp_path):
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    data = write_imagenet_folder(tmp_path / "inet", per_class=4, val_per_class=2)
    cfg = train_cfg(data, tmp_path / "r", iterations=2, batch=6, model="resnet18")
    cfg = cfg.replace(
        {"model.init": str(tmp_path / "r18.pth"), "model.freeze_to": "layer3", "data.image_size": 32}
    )
    ckpt = load_checkpoint(train(cfg))
    assert (
        ckpt.train_state["init"]["replaced"] == ["fc.bias", "fc.weight"]
        and ckpt.model["fc.weight"].shape[0] == 3
    )
    assert ckpt.preprocessing["mean"].flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])
    assert ckpt.preprocessing["std"].flatten().tolist() == pytest.approx([0.229, 0.224, 0.225])


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"model.name": "cifar_resnet14"},
            "holds cifar_resnet8's weights, not cifar_resnet14's: use --model cifar_resnet8",
        ),
        (
            {"model.freeze_to": "layer4"},
            "--freeze-to 'layer4': this net's stages are conv1, layer1 ... layer3",
        ),
        ({"model.init": "nowhere.pt"}, "--init 'nowhere.pt': no such file, run directory or published net"),
        (
            {"model.init": None, "model.freeze_to": "none", "optim.head_lr": 0.01},
            "--head-lr 0.01 applies to the layers --init replaced",
        ),
    ],
)
def test_bad_finetuning_input_is_one_line_naming_the_value(source, pets, tmp_path, change, message):
    cfg = finetune_cfg(pets, tmp_path / "bad", source).replace(change)
    with pytest.raises(ValueError) as e:
        train(cfg)
    assert message in str(e.value)
    assert not (tmp_path / "bad").exists()


def test_head_lr_needs_a_new_head(source, tiny_data, tmp_path):
    """Same classes as the source: nothing was replaced, so there is no head for --head-lr."""
    cfg = finetune_cfg(tiny_data, tmp_path / "same", source, **{"optim.head_lr": 0.01})
    with pytest.raises(ValueError, match="this run has none"):
        train(cfg)


def test_eval_per_class_prints_errors_and_writes_the_confusion_matrix(source, pets, tmp_path, capsys):
    run = train(finetune_cfg(pets, tmp_path / "ft", source))
    capsys.readouterr()
    assert cli_main(["eval", str(run), "--per-class"]) == 0
    out = capsys.readouterr().out
    doc = json.loads((run / "confusion.json").read_text())
    m = doc["matrix"]
    assert doc["classes"] == ["cat", "dog", "frog"] and sum(map(sum, m)) == 36  # 12 test images a class
    assert [r["images"] for r in doc["per_class"]] == [12, 12, 12]
    wrong = sum(m[i][j] for i in range(3) for j in range(3) if i != j)
    assert f"top-1 error {100 * wrong / 36:.2f}%" in out
    for r in doc["per_class"]:
        assert f"{r['class']:<5}  {12:>6}  {r['err']:10.2f}%" in out
    assert (run / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert cli_main(["eval", str(run), "--per-class", "--json"]) == 0  # reslearn's own files: replaced
    assert json.loads(capsys.readouterr().out)["confusion"] == m
    # Beside a checkpoint outside a run, a file reslearn did not write stays unless --overwrite.
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "ck.pt").write_bytes((run / "last.pt").read_bytes())
    (tmp_path / "loose" / "confusion.json").write_text("mine")
    assert cli_main(["eval", str(tmp_path / "loose" / "ck.pt"), "--per-class"]) == 2
    assert "reslearn did not write it" in capsys.readouterr().err
    assert (tmp_path / "loose" / "confusion.json").read_text() == "mine"
    assert cli_main(["eval", str(tmp_path / "loose" / "ck.pt"), "--per-class", "--overwrite"]) == 0


def test_other_classes_get_a_new_classifier_even_when_as_many(source, tmp_path):
    """Ten other classes: the source's 10-way classifier means nothing for them."""
    other = write_imagefolder(tmp_path / "other", per_class=4, classes=tuple(f"thing{i}" for i in range(10)))
    ckpt = load_checkpoint(train(finetune_cfg(other, tmp_path / "o", source)))
    assert ckpt.train_state["init"]["replaced"] == ["fc.bias", "fc.weight"]
    assert not torch.equal(ckpt.model["fc.weight"], load_checkpoint(source).model["fc.weight"])


def test_init_loads_ddp_keys_and_names_what_it_would_leave_fresh(tmp_path):
    """Issue 32: keys prefixed ``module.`` (a DDP model's) load; weights that leave a layer
    besides the classifier fresh are refused naming it, unless --init-partial, whose run
    records (and logs) what stayed fresh."""
    torch.manual_seed(0)
    state = torchvision.models.resnet18().state_dict()
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pth")
    del state["layer4.1.conv2.weight"]
    torch.save(state, tmp_path / "holed.pth")
    data = write_imagenet_folder(tmp_path / "inet", per_class=4, val_per_class=2)
    cfg = train_cfg(data, tmp_path / "r", iterations=1, batch=6, model="resnet18").replace(
        {"model.init": str(tmp_path / "ddp.pth"), "data.image_size": 32}
    )
    assert load_checkpoint(train(cfg)).train_state["init"]["replaced"] == ["fc.bias", "fc.weight"]
    holed = cfg.replace({"model.init": str(tmp_path / "holed.pth"), "run.out": str(tmp_path / "h")})
    with pytest.raises(
        ValueError, match=r"leaves 1 layer\(s\) besides the classifier fresh: layer4\.1\.conv2;"
    ):
        train(holed)
    assert not (tmp_path / "h").exists()
    run = train(holed.replace({"model.init_partial": True}))
    assert "layer4.1.conv2.weight" in load_checkpoint(run).train_state["init"]["replaced"]
