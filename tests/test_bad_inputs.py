"""Bad input, as a careless or hostile user types it: every case gets a non-zero
exit code and one clear line naming the bad value, no traceback, and leaves every file
and folder of the workspace as it was. In process (no new interpreter per case)."""

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from reslearn import create_model
from reslearn.cli import main as cli_main

from .helpers import write_imagefolder, write_pickle_cifar

R0 = "runs/r0"


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace: tiny data sets, a finished run, its export, and the files a careless
    user leaves around."""
    root = tmp_path_factory.mktemp("ws")
    old = Path.cwd()
    os.chdir(root)
    try:
        write_pickle_cifar(root / "c10", per_batch=40, test=60)
        write_imagefolder(root / "folder")
        # Data pickles that run a command when pickle.load reads them (issue 32): in the meta
        # file (class names) and in a training batch, each beside valid batches.
        import pickle
        import shutil

        for bad in ("batches.meta", "data_batch_1"):
            d = root / f"c10_evil_{bad.split('.')[-1].split('_')[0]}" / "cifar-10-batches-py"
            shutil.copytree(root / "c10" / "cifar-10-batches-py", d)
            (d / bad).write_bytes(pickle.dumps({"label_names": _Evil(), "data": _Evil(), "labels": []}))
        for split in ("train", "test"):  # a hidden folder is not a class
            (root / "folder" / split / ".cache").mkdir()
            Image.new("RGB", (32, 32)).save(root / "folder" / split / ".cache" / "x.png")
        (root / "one_class" / "train" / "cat").mkdir(parents=True)
        (root / "one_class" / "test" / "cat").mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(root / "one_class" / "train" / "cat" / "a.png")
        Image.new("RGB", (32, 32)).save(root / "one_class" / "test" / "cat" / "a.png")
        (root / "empty_dir").mkdir()
        for split, c, i in [(s, c, i) for s in ("train", "val") for c in ("ant", "bee") for i in range(4)]:
            for tree in ("photos", "photos_val"):  # folder data sets: train/ alone, train/ + val/
                if split == "val" and tree == "photos":
                    continue
                (root / tree / split / c).mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (32, 32), (40 * i, 0, 0)).save(root / tree / split / c / f"{i}.png")
        for name in ("\udcffcat", "dog"):  # a class folder whose name is not UTF-8 (byte 0xff)
            (root / "nonutf8" / "train" / name).mkdir(parents=True)
            Image.new("RGB", (32, 32)).save(root / "nonutf8" / "train" / name / "a.png")
        (root / "somedir").mkdir()
        (root / "mine").mkdir()  # the user's own files, named as a run's would be
        (root / "mine" / "config.json").write_text('{"mine": true}\n')
        (root / "mine" / "metrics.jsonl").write_text('{"step": 1}\n')
        (root / "afile.txt").write_text("not a folder\n")
        (root / "existing.json").write_text("[]\n")
        (root / "rand.pt").write_bytes(bytes(range(256)) * 4)
        (root / "text.pt").write_text("hello\n")
        torch.save({"format": "reslearn-checkpoint", "format_version": 2, "x": _Evil()}, root / "evil.pt")
        torch.save(torch.zeros(3), root / "tensor.pth")
        torch.save([1, 2, 3], root / "list.pth")
        fake50 = {k: torch.zeros(1) for k in create_model("resnet50").state_dict()}
        torch.save(fake50, root / "fake50.pth")
        Image.new("RGB", (64, 48)).save(root / "img.png")
        Image.new("1", (200, 200)).save(root / "big.png")
        # config files
        (root / "bad.json").write_text('{"optim": {lr: 1}}')
        (root / "bad.toml").write_text("optim = 3\n")
        (root / "bad2.toml").write_text("[optim]\nlr = \n")
        (root / "lr_fast.json").write_text('{"optim": {"lr": "fast"}}')
        (root / "threads_true.json").write_text('{"run": {"threads": true}}')
        (root / "extra.json").write_text('{"extra": {"a": 1}}')
        (root / "nosuch.json").write_text('{"optim": {"nosuch": 1}}')
        (root / "list_root.json").write_text("[1, 2]")
        (root / "config.txt").write_text("{}")
        argv = ["train", "--model", "cifar_resnet8", "--data-dir", "c10", "--no-download"]
        argv += ["--iterations", "2", "--batch-size", "32", "--out", R0, "--progress", "none"]
        assert cli_main([*argv, "--no-tensorboard", "--amp", "off"]) == 0
        assert cli_main(["export", R0, "--format", "safetensors", "--out", "r0.safetensors"]) == 0
        (root / "ckpt_copy.pt").write_bytes((root / R0 / "last.pt").read_bytes())
        (root / "torch.safetensors").write_bytes((root / R0 / "last.pt").read_bytes())
        (root / "runs" / "only_prev").mkdir()  # its last save did not finish
        (root / "runs" / "only_prev" / "prev.pt").write_bytes((root / R0 / "last.pt").read_bytes())
        for study, final in (("study_bad_final", '{"note": 1}'), ("study_bad_config", None)):
            (root / study / "r-s1").mkdir(parents=True)  # a study folder with one broken run
            for f in ("config.json", "metrics.jsonl"):
                (root / study / "r-s1" / f).write_bytes((root / R0 / f).read_bytes())
            if final is None:
                (root / study / "r-s1" / "config.json").write_text('{"model": ')
            else:
                (root / study / "r-s1" / "final.json").write_text(final)
        yield root
    finally:
        os.chdir(old)


def snapshot(root: Path) -> dict[str, str]:
    """Every folder and every file's content under ``root``."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


T = ["train", "--data-dir", "c10", "--no-download", "--progress", "none", "--no-tensorboard"]
TR = [*T, "--model", "cifar_resnet8", "--batch-size", "32", "--iterations", "2", "--out", "runs/new"]

# (id, argv, exit code, text the message must contain, environment)
CASES = [
    # ---- train: the model
    ("model-unknown", [*T, "--model", "resnet9"], 2, "resnet9", {}),
    ("model-absurd-depth", [*T, "--model", "cifar_resnet99998"], 2, "99998", {}),
    ("model-not-6n+2", [*T, "--model", "cifar_resnet21"], 2, "21", {}),
    ("model-plain-with-shortcut", [*T, "--model", "plain20", "--shortcut", "B"], 2, "plain20", {}),
    ("model-shortcut-D", [*TR, "--shortcut", "D"], 2, "'D'", {}),
    ("model-variant-v2", [*TR, "--variant", "v2"], 2, "'v2'", {}),
    ("model-init-mode", [*TR, "--init-mode", "xavier"], 2, "'xavier'", {}),
    # ---- train: numbers
    ("iterations-0", [*TR, "--iterations", "0"], 2, "0", {}),
    ("bn-splits-0", [*TR, "--bn-splits", "0"], 2, "bn_splits must be a positive integer, got 0", {}),
    ("bn-splits-uneven", [*TR, "--bn-splits", "3"], 2, "--bn-splits 3 does not split a process's batch of", {}),
    ("bn-splits-with-sync-bn", [*TR, "--bn-splits", "2", "--sync-bn"], 2, "bn_splits=2 contradict", {}),
    ("iterations-negative", [*TR, "--iterations", "-5"], 2, "-5", {}),
    ("iterations-text", [*TR, "--iterations", "abc"], 2, "'abc'", {}),
    ("iterations-float", [*TR, "--iterations", "2.5"], 2, "'2.5'", {}),
    ("epochs-0", [*TR, "--epochs", "0", "--iterations", "none"], 2, "0", {}),
    ("iterations-and-epochs", [*T, "--model", "cifar_resnet8", "--iterations", "5", "--epochs", "2"], 2, "both", {}),
    ("batch-0", [*TR, "--batch-size", "0"], 2, "0", {}),
    ("batch-negative", [*TR, "--batch-size", "-32"], 2, "-32", {}),
    ("batch-over-data", [*TR, "--batch-size", "10000"], 2, "10000", {}),
    ("lr-0", [*TR, "--lr", "0"], 2, "0", {}),
    ("val-split-1.0", [*TR, "--val-split", "1.0"], 2, "1.0", {}),
    ("val-split-0-without-val", [*T, "--data-dir", "photos", "--model", "cifar_resnet8", "--val-split", "0", "--out", "runs/new"], 2, "--val-split 0", {}),
    ("val-split-beside-val", [*T, "--data-dir", "photos_val", "--model", "cifar_resnet8", "--val-split", "0.2", "--out", "runs/new"], 2, "--val-split 0.2", {}),
    ("image-size-over-memory", [*T, "--data-dir", "folder", "--model", "resnet18", "--recipe", "imagenet", "--image-size", "100000", "--out", "runs/new"], 2, "--image-size 100000", {}),
    ("class-folder-not-utf8", [*T, "--data-dir", "nonutf8", "--model", "cifar_resnet8", "--out", "runs/new"], 2, "not UTF-8", {}),
    ("lr-inf", [*TR, "--lr", "inf"], 2, "inf", {}),
    ("weight-decay-inf", [*TR, "--weight-decay", "inf"], 2, "inf", {}),
    ("weight-decay-nan", [*TR, "--weight-decay", "nan"], 2, "nan", {}),
    ("head-lr-inf", [*TR, "--head-lr", "inf"], 2, "inf", {}),
    ("warmup-until-nan", [*TR, "--set", "optim.warmup_until_err=nan"], 2, "nan", {}),
    ("lr-negative", [*TR, "--lr", "-1"], 2, "-1", {}),
    ("lr-text", [*TR, "--lr", "fast"], 2, "'fast'", {}),
    ("lr-nan", [*TR, "--lr", "nan"], 2, "nan", {}),
    ("momentum-1.5", [*TR, "--momentum", "1.5"], 2, "1.5", {}),
    ("weight-decay-negative", [*TR, "--weight-decay", "-1"], 2, "-1", {}),
    ("norm-weight-decay-negative", [*TR, "--norm-weight-decay", "-0.1"], 2, "-0.1", {}),
    ("milestones-decreasing", [*TR, "--milestones", "0.9,0.5"], 2, "0.9", {}),
    ("milestones-over-1", [*TR, "--milestones", "1.5"], 2, "1.5", {}),
    ("milestones-text", [*TR, "--milestones", "a,b"], 2, "'a,b'", {}),
    ("warmup-check-0", [*TR, "--warmup-check-every", "0"], 2, "0", {}),
    ("warmup-lr-0", [*TR, "--warmup-lr", "0"], 2, "0", {}),
    ("plateau-patience-0", [*TR, "--plateau-patience", "0"], 2, "0", {}),
    ("plateau-threshold-negative", [*TR, "--plateau-threshold", "-1"], 2, "-1", {}),
    ("step-epochs-0", [*TR, "--step-epochs", "0"], 2, "0", {}),
    ("val-split-negative", [*TR, "--val-split", "-1"], 2, "-1", {}),
    ("val-split-all", [*TR, "--val-split", "200"], 2, "200", {}),
    ("workers-negative", [*TR, "--workers", "-1"], 2, "-1", {}),
    ("image-size-0", [*TR, "--image-size", "0"], 2, "0", {}),
    ("lighting-negative", [*TR, "--lighting", "-1"], 2, "-1", {}),
    ("seed-text", [*TR, "--seed", "abc"], 2, "'abc'", {}),
    ("eval-every-negative", [*TR, "--eval-every", "-1"], 2, "-1", {}),
    ("checkpoint-every-negative", [*TR, "--checkpoint-every", "-1"], 2, "-1", {}),
    ("eval-batch-size-0", [*TR, "--eval-batch-size", "0"], 2, "0", {}),
    ("threads-negative", [*TR, "--threads", "-1"], 2, "-1", {}),
    ("nproc-0", [*TR, "--nproc", "0"], 2, "0", {}),
    ("nproc-text", [*TR, "--nproc", "two"], 2, "'two'", {}),
    # ---- train: data sets and fine-tuning
    ("dataset-unknown", [*TR, "--dataset", "mnist"], 2, "'mnist'", {}),
    ("labels-coarse-on-cifar10", [*TR, "--labels", "coarse"], 2, "'coarse'", {}),
    ("val-split-fraction-over-1", [*TR, "--val-split", "1.5"], 2, "1.5", {}),
    ("init-missing", [*TR, "--init", "nope.pt"], 2, "'nope.pt'", {}),
    ("init-not-a-checkpoint", [*TR, "--init", "text.pt"], 2, "text.pt", {}),
    ("init-other-net", [*TR, "--init", R0, "--model", "cifar_resnet14"], 2, "cifar_resnet8's weights, not cifar_resnet14's", {}),
    ("freeze-past-last-stage", [*TR, "--init", R0, "--freeze-to", "layer4"], 2, "'layer4'", {}),
    ("freeze-unknown", [*TR, "--freeze-to", "layer9"], 2, "'layer9'", {}),
    ("head-lr-without-init", [*TR, "--head-lr", "0.01"], 2, "--head-lr 0.01", {}),
    ("head-lr-without-new-head", [*TR, "--init", R0, "--head-lr", "0.01"], 2, "has none", {}),
    ("head-lr-0", [*TR, "--head-lr", "0"], 2, "0", {}),
    # ---- fine-tuning refuses what is not fine-tuning (issue 32)
    ("init-partial-without-init", [*TR, "--init-partial"], 2, "init_partial", {}),
    ("freeze-to-without-init", [*TR, "--freeze-to", "layer1"], 2, "freeze_to", {}),
    ("init-shortcut-mismatch", [*TR, "--init", R0, "--shortcut", "B"], 2, "shortcut A", {}),
    # ---- train: choices
    ("device-tpu", [*TR, "--device", "tpu"], 2, "'tpu'", {}),
    ("device-missing-cuda", [*TR, "--device", "cuda:7"], 2, "cuda:7", {}),
    ("amp-fp8", [*TR, "--amp", "fp8"], 2, "'fp8'", {}),
    ("dtype-float16", [*TR, "--dtype", "float16"], 2, "'float16'", {}),
    ("bf16-with-float64", [*TR, "--amp", "bf16", "--dtype", "float64"], 2, "float64", {}),
    ("recipe-unknown", [*TR, "--recipe", "mnist"], 2, "'mnist'", {}),
    ("schedule-unknown", [*TR, "--schedule", "cosine"], 2, "'cosine'", {}),
    ("normalize-unknown", [*TR, "--normalize", "global"], 2, "'global'", {}),
    ("loader-unknown", [*TR, "--loader", "fast"], 2, "'fast'", {}),
    ("nan-policy-unknown", [*TR, "--nan-policy", "ignore"], 2, "'ignore'", {}),
    ("channels-last-maybe", [*TR, "--channels-last", "maybe"], 2, "'maybe'", {}),
    ("progress-unknown", [*TR, "--progress", "loud"], 2, "'loud'", {}),
    # ---- train: data
    ("data-missing", ["train", "--data-dir", "no_such_data", "--no-download", "--iterations", "2"], 2, "no_such_data", {}),
    ("data-one-class", [*TR[:2], "one_class", *TR[3:]], 2, "one_class", {}),
    ("data-empty-folder", [*TR[:2], "empty_dir", *TR[3:]], 2, "empty_dir", {}),
    ("data-is-a-file", [*TR[:2], "afile.txt", *TR[3:]], 2, "afile.txt", {}),
    ("class-index-missing", [*TR, "--recipe", "imagenet", "--class-index", "nope.tsv"], 2, "nope.tsv", {}),
    ("class-index-on-a-folder", [*T, "--data-dir", "photos", "--model", "cifar_resnet8", "--class-index", "existing.json", "--out", "runs/new"], 2, "--class-index applies", {}),
    # ---- train: config files and --set
    ("config-missing", [*TR, "--config", "missing.json"], 2, "missing.json", {}),
    ("config-bad-json", [*TR, "--config", "bad.json"], 2, "bad.json', line 1", {}),
    ("config-section-not-table", [*TR, "--config", "bad.toml"], 2, "section 'optim' must be a table", {}),
    ("config-bad-toml", [*TR, "--config", "bad2.toml"], 2, "line 2", {}),
    ("config-lr-text", [*TR, "--config", "lr_fast.json"], 2, "'fast'", {}),
    ("config-threads-bool", [*TR, "--config", "threads_true.json"], 2, "True", {}),
    ("config-unknown-section", [*TR, "--config", "extra.json"], 2, "'extra'", {}),
    ("config-unknown-key", [*TR, "--config", "nosuch.json"], 2, "nosuch", {}),
    ("config-not-a-table", [*TR, "--config", "list_root.json"], 2, "list_root.json", {}),
    ("config-wrong-suffix", [*TR, "--config", "config.txt"], 2, "config.txt", {}),
    ("set-unknown-key", [*TR, "--set", "optim.nosuch=1"], 2, "nosuch", {}),
    ("set-unknown-section", [*TR, "--set", "nosection.lr=1"], 2, "nosection", {}),
    ("set-without-value", [*TR, "--set", "optim.lr"], 2, "optim.lr", {}),
    ("set-bad-value", [*TR, "--set", "optim.lr=abc"], 2, "'abc'", {}),
    # ---- train: runs and checkpoints
    ("resume-missing", ["train", "--resume", "no_such_run"], 2, "no_such_run", {}),
    ("resume-random-bytes", ["train", "--resume", "rand.pt"], 2, "not a PyTorch file", {}),
    ("resume-text", ["train", "--resume", "text.pt"], 2, "not a PyTorch file", {}),
    ("resume-safetensors", ["train", "--resume", "r0.safetensors"], 2, "safetensors", {}),
    ("resume-evil", ["train", "--resume", "evil.pt"], 2, "execute", {}),
    ("resume-with-overwrite", ["train", "--resume", R0, "--overwrite"], 2, "--overwrite", {}),
    ("resume-change-model", ["train", "--resume", R0, "--model", "resnet56"], 2, "--model", {}),
    ("resume-empty-folder", ["train", "--resume", "empty_dir"], 2, "empty_dir", {}),
    ("out-holds-a-run", [*TR[:-1], R0], 2, "already holds a run", {}),
    ("out-users-files", [*TR[:-1], "mine"], 2, "did not write", {}),
    ("out-is-a-file", [*TR[:-1], "afile.txt"], 2, "is a file", {}),
    ("auto-resume-without-out", ["train", "--auto-resume"], 2, "--auto-resume", {}),
    ("auto-resume-and-resume", ["train", "--auto-resume", "--resume", R0], 2, "not both", {}),
    # ---- eval
    ("eval-missing", ["eval", "no_such_run"], 2, "no_such_run", {}),
    ("eval-unknown-net-name", ["eval", "resnet56-cifar10-x"], 2, "resnet20-cifar10-jpeg-16k", {}),  # the published names
    ("eval-random-bytes", ["eval", "rand.pt"], 2, "rand.pt", {}),
    ("eval-evil", ["eval", "evil.pt"], 2, "execute", {}),
    ("eval-batch-0", ["eval", R0, "--batch-size", "0"], 2, "--batch-size", {}),
    ("eval-workers-negative", ["eval", R0, "--workers", "-1"], 2, "--workers", {}),
    ("eval-threads-negative", ["eval", R0, "--threads", "-1"], 2, "--threads", {}),
    ("eval-views-unknown", ["eval", R0, "--views", "12crop"], 2, "'12crop'", {}),
    ("eval-device-tpu", ["eval", R0, "--device", "tpu"], 2, "'tpu'", {}),
    ("eval-data-missing", ["eval", R0, "--data-dir", "no_such_data"], 2, "no_such_data", {}),
    # ---- predict
    ("predict-empty-folder", ["predict", R0, "empty_dir"], 2, "empty_dir", {}),
    ("predict-top-k-0", ["predict", R0, "img.png", "--top-k", "0"], 2, "--top-k", {}),
    ("predict-batch-0", ["predict", R0, "img.png", "--batch-size", "0"], 2, "--batch-size", {}),
    ("predict-threads-negative", ["predict", R0, "img.png", "--threads", "-1"], 2, "--threads", {}),
    ("predict-missing-net", ["predict", "no_such_run", "img.png"], 2, "no_such_run", {}),
    ("predict-random-net", ["predict", "rand.pt", "img.png"], 2, "rand.pt", {}),
    ("predict-missing-image", ["predict", R0, "no_such.png"], 1, "no_such.png", {}),
    ("predict-text-as-image", ["predict", R0, "afile.txt"], 1, "afile.txt", {}),
    ("predict-over-pixel-limit", ["predict", R0, "big.png"], 1, "39,999", {"RESLEARN_MAX_PIXELS": "39999"}),
    ("predict-bad-pixel-limit", ["predict", R0, "img.png"], 2, "'lots'", {"RESLEARN_MAX_PIXELS": "lots"}),
    # ---- the right advice (issue 32)
    ("eval-run-with-only-prev", ["eval", "runs/only_prev"], 2, "runs/only_prev/prev.pt", {}),
    ("resume-run-with-only-prev", ["train", "--resume", "runs/only_prev"], 2, "runs/only_prev/prev.pt", {}),
    ("eval-torch-named-safetensors", ["eval", "torch.safetensors"], 2, "name it .pt", {}),
    ("predict-net-file-as-image", ["predict", R0, "r0.safetensors"], 1, "the net comes first", {}),
    # ---- environment variables are input too (issue 32): one line naming the variable
    ("env-omp-threads-text", TR, 2, "OMP_NUM_THREADS", {"OMP_NUM_THREADS": "abc"}),
    ("env-omp-threads-0", ["eval", R0], 2, "OMP_NUM_THREADS", {"OMP_NUM_THREADS": "0"}),
    ("env-mkl-threads-negative", ["summary", "resnet20"], 2, "MKL_NUM_THREADS", {"MKL_NUM_THREADS": "-2"}),
    ("env-dist-timeout-text", TR, 2, "RESLEARN_DIST_TIMEOUT", {"RESLEARN_DIST_TIMEOUT": "soon"}),
    ("env-dist-timeout-inf", TR, 2, "RESLEARN_DIST_TIMEOUT", {"RESLEARN_DIST_TIMEOUT": "inf"}),
    ("env-cache-dir-a-file", TR, 2, "RESLEARN_CACHE_DIR", {"RESLEARN_CACHE_DIR": "afile.txt"}),
    ("env-jobs-dir-a-file", TR, 2, "RESLEARN_JOBS_DIR", {"RESLEARN_JOBS_DIR": "afile.txt"}),
    # ---- export
    ("export-over-last", ["export", R0, "--format", "safetensors", "--out", f"{R0}/last.pt"], 2, "last.pt", {}),
    ("export-over-prev", ["export", R0, "--format", "safetensors", "--out", f"{R0}/prev.pt"], 2, "prev.pt", {}),
    ("export-over-checkpoint-copy", ["export", R0, "--format", "onnx", "--out", "ckpt_copy.pt", "--overwrite"], 2, "ckpt_copy.pt", {}),
    ("export-over-input", ["export", "ckpt_copy.pt", "--format", "torchscript", "--out", "ckpt_copy.pt"], 2, "ckpt_copy.pt", {}),
    ("export-existing", ["export", R0, "--format", "safetensors", "--out", "r0.safetensors"], 2, "--overwrite", {}),
    ("export-no-folder", ["export", R0, "--format", "onnx", "--out", "/nonexistent/x.onnx"], 2, "/nonexistent", {}),
    ("export-no-subfolder", ["export", R0, "--format", "onnx", "--out", "newdir/x.onnx"], 2, "newdir", {}),
    # /proc takes no new files, not even root's: the error names the file asked for, not the
    # temporary the atomic write goes through
    ("export-unwritable-folder", ["export", R0, "--format", "safetensors", "--out", "/proc/x.st"], 1, "'/proc/x.st'", {}),
    ("export-to-folder", ["export", R0, "--format", "onnx", "--out", "somedir"], 2, "somedir", {}),
    ("export-format-pdf", ["export", R0, "--format", "pdf", "--out", "x.pdf"], 2, "'pdf'", {}),
    ("export-random", ["export", "rand.pt", "--format", "onnx", "--out", "x.onnx"], 2, "rand.pt", {}),
    # ---- import-torchvision
    ("tv-tensor", ["import-torchvision", "tensor.pth", "--model", "resnet18", "--out", "tv.pt"], 2, "Tensor", {}),
    ("tv-list", ["import-torchvision", "list.pth", "--model", "resnet18", "--out", "tv.pt"], 2, "list", {}),
    ("tv-other-net", ["import-torchvision", "fake50.pth", "--model", "resnet18", "--out", "tv.pt"], 2, "resnet50", {}),
    ("tv-cifar-net", ["import-torchvision", "fake50.pth", "--model", "resnet20", "--out", "tv.pt"], 2, "resnet20", {}),
    ("tv-plain-net", ["import-torchvision", "fake50.pth", "--model", "plain18", "--out", "tv.pt"], 2, "plain18", {}),
    ("tv-missing", ["import-torchvision", "nope.pth", "--model", "resnet18", "--out", "tv.pt"], 2, "nope.pth", {}),
    ("tv-evil", ["import-torchvision", "evil.pt", "--model", "resnet18", "--out", "tv.pt"], 2, "evil.pt", {}),
    ("tv-over-checkpoint", ["import-torchvision", "fake50.pth", "--model", "resnet50", "--out", f"{R0}/last.pt"], 2, "last.pt", {}),
    ("tv-no-folder", ["import-torchvision", "fake50.pth", "--model", "resnet50", "--out", "/nonexistent/t.pt"], 2, "/nonexistent", {}),
    ("tv-over-input", ["import-torchvision", "fake50.pth", "--model", "resnet50", "--out", "fake50.pth"], 2, "fake50.pth", {}),
    # ---- responses, report
    ("responses-over-checkpoint", ["responses", R0, "--out", f"{R0}/last.pt"], 2, "last.pt", {}),
    ("responses-no-folder", ["responses", R0, "--out", "/nonexistent/r.json"], 2, "/nonexistent", {}),
    ("responses-to-folder", ["responses", R0, "--out", "somedir"], 2, "somedir", {}),
    ("responses-existing", ["responses", R0, "--out", "existing.json"], 2, "existing.json", {}),
    ("responses-missing", ["responses", "no_such_run"], 2, "no_such_run", {}),
    ("report-on-a-file", ["report", "afile.txt"], 2, "afile.txt", {}),
    ("report-missing", ["report", "no_such_dir"], 2, "no_such_dir", {}),
    ("report-foreign-final", ["report", "study_bad_final"], 2, "final.json has no train_err", {}),
    ("report-damaged-config", ["report", "study_bad_config"], 2, "r-s1/config.json", {}),
    # ---- bench, summary
    ("bench-repeat-0", ["bench", "--repeat", "0"], 2, "--repeat", {}),
    ("bench-seconds-negative", ["bench", "--seconds", "-1"], 2, "--seconds", {}),
    ("bench-seconds-nan", ["bench", "--seconds", "nan"], 2, "nan", {}),
    ("bench-model-unknown", ["bench", "--models", "resnet9"], 2, "resnet9", {}),
    ("bench-models-empty", ["bench", "--models", ","], 2, "--models", {}),
    ("bench-mode-unknown", ["bench", "--modes", "baseline,turbo"], 2, "'turbo'", {}),
    ("bench-batch-0", ["bench", "--batch-size", "0"], 2, "--batch-size", {}),
    ("bench-json-existing", ["bench", "--models", "cifar_resnet8", "--json", "existing.json"], 2, "existing.json", {}),
    ("bench-json-no-folder", ["bench", "--models", "cifar_resnet8", "--json", "/nonexistent/b.json"], 2, "/nonexistent", {}),
    ("bench-threads-negative", ["bench", "--threads", "-1"], 2, "--threads", {}),
    ("summary-absurd-depth", ["summary", "cifar_resnet99998"], 2, "99998", {}),
    ("summary-unknown", ["summary", "resnet9"], 2, "resnet9", {}),
    ("summary-shortcut-D", ["summary", "resnet18", "--shortcut", "D"], 2, "'D'", {}),
    # ---- reproduce
    ("reproduce-iterations-0", ["reproduce", "cifar", "--out", "study", "--iterations", "0"], 2, "iterations must be a positive integer, got 0", {}),
    ("reproduce-iterations-negative", ["reproduce", "cifar", "--out", "study", "--iterations", "-3"], 2, "-3", {}),
    ("reproduce-seeds-text", ["reproduce", "cifar", "--out", "study", "--seeds", "a,b"], 2, "'a,b'", {}),
    ("reproduce-model-unknown", ["reproduce", "cifar", "--out", "study", "--models", "resnet9"], 2, "resnet9", {}),
    ("reproduce-image-size-on-cifar", ["reproduce", "cifar", "--out", "study", "--image-size", "64"], 2, "data.image_size applies to the ImageNet recipe", {}),
    ("reproduce-eval-every-negative", ["reproduce", "cifar", "--out", "study", "--eval-every", "-1"], 2, "eval_every must be a non-negative integer, got -1", {}),
    ("reproduce-study-unknown", ["reproduce", "mnist", "--out", "study"], 2, "'mnist'", {}),
    # ---- data pickles never run code (issue 32): refused naming the file and the global
    ("pickle-meta-runs-code-train", [*TR, "--data-dir", "c10_evil_meta"], 2, "posix.system", {}),
    ("pickle-batch-runs-code-train", [*TR, "--data-dir", "c10_evil_data"], 2, "posix.system", {}),
    ("pickle-meta-runs-code-eval", ["eval", R0, "--data-dir", "c10_evil_meta"], 2, "batches.meta", {}),
    ("pickle-batch-runs-code-responses", ["responses", R0, "--data-dir", "c10_evil_data"], 2, "data_batch_1", {}),
]  # fmt: skip


def test_the_table_is_long_and_its_ids_unique():
    assert len(CASES) >= 100 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name, argv, code, named, env", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line_and_changes_nothing(
    ws, capsys, monkeypatch, name, argv, code, named, env
):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(ws)
    before = snapshot(ws)
    try:
        rc = cli_main(list(argv))
    except SystemExit as e:  # argparse: usage line, then the error line
        rc = e.code
    out, err = capsys.readouterr()
    assert rc == code, (rc, out, err)
    assert named in err, err
    assert "Traceback" not in err and "Traceback" not in out
    lines = [ln for ln in err.splitlines() if ln.strip()]
    problem = [ln for ln in lines if "error" in ln or "cannot" in ln]
    assert len(problem) == 1, err  # one line says what is wrong
    assert len(problem[0]) < 600 and problem[0].rstrip()[-1] not in " ,(", problem[0]  # whole
    if code == 2 and not name.startswith("predict-"):
        assert "bench on" not in out  # refused before any work (no banner)
    assert snapshot(ws) == before  # nothing created, changed or removed
    assert not (ws / "pwned").exists()


# ---------------------------------------------------------------- accepted, as they should be
def test_hidden_folders_are_not_classes(ws, tmp_path, monkeypatch):
    monkeypatch.chdir(ws)
    out = tmp_path / "r"
    argv = ["train", "--model", "cifar_resnet8", "--data-dir", "folder", "--no-download", "--iterations", "1"]
    assert (
        cli_main([*argv, "--batch-size", "4", "--out", str(out), "--progress", "none", "--no-tensorboard"])
        == 0
    )
    from reslearn.checkpoint import load_checkpoint

    assert load_checkpoint(out).classes == ["cat", "dog", "frog"]


def test_overwrite_replaces_only_an_export_of_its_kind_and_says_so(ws, tmp_path, capsys, monkeypatch):
    """--overwrite replaces a file reslearn wrote of the kind it writes there (an earlier
    export); a user's file at that path is refused, even with --overwrite, and kept."""
    monkeypatch.chdir(ws)
    target = tmp_path / "r0.ts"
    argv = ["export", R0, "--format", "torchscript", "--out", str(target)]
    assert cli_main(argv) == 0
    first = target.read_bytes()
    assert cli_main([*argv, "--overwrite"]) == 0
    assert f"replacing {target}" in capsys.readouterr().out and target.read_bytes() == first
    theirs = tmp_path / "theirs.onnx"
    theirs.write_text("old")
    assert cli_main(["export", R0, "--format", "torchscript", "--out", str(theirs), "--overwrite"]) == 2
    assert "is not a TorchScript archive" in capsys.readouterr().err and theirs.read_text() == "old"


def test_a_run_folder_is_one_reslearn_made(ws, tmp_path, capsys, monkeypatch):
    """Its marker lets a restart before the first checkpoint reuse it; a user's folder
    with the same file names is refused, with --overwrite too (issue 32: --overwrite
    replaces only what the run's manifest lists), and nothing of theirs is touched."""
    monkeypatch.chdir(ws)
    argv = [*TR[:-1], str(tmp_path / "run")]
    assert cli_main(argv) == 0
    run = tmp_path / "run"
    assert (run / ".reslearn-run").exists()
    for f in ("last.pt", "prev.pt", "final.json"):
        (run / f).unlink(missing_ok=True)  # as if killed before its first checkpoint
    assert cli_main(argv) == 0  # its own folder: no refusal
    (run / "notes.txt").write_text("mine")
    assert cli_main([*argv, "--overwrite"]) == 0  # the run's own files are replaced, named
    assert "replacing" in capsys.readouterr().err and (run / "notes.txt").read_text() == "mine"
    for what in ("config.json", "tb"):
        mine = tmp_path / f"mine-{what}"
        (mine / "tb" / "old").mkdir(parents=True) if what == "tb" else mine.mkdir()
        (mine / "tb" / "old" / "events.txt").write_text("x") if what == "tb" else (mine / what).write_text(
            "{}"
        )
        (mine / "notes.txt").write_text("keep me")
        before = snapshot(mine)
        for extra in ([], ["--overwrite"]):
            assert cli_main([*TR[:-1], str(mine), *extra]) == 2
            assert "did not write" in capsys.readouterr().err
        assert snapshot(mine) == before  # never touched


def test_no_output_goes_inside_a_run_or_over_its_fine_tuning_source(ws, tmp_path, capsys, monkeypatch):
    """Issue 32: a run's files are written by train alone; a fine-tuned run does not go
    into the run it starts from; no --out inside the data being read."""
    monkeypatch.chdir(ws)
    (ws / R0 / "tb").mkdir()  # a folder inside the run, as TensorBoard's
    before = snapshot(ws)
    cases = [
        (["responses", R0, "--out", f"{R0}/metrics.jsonl", "--overwrite"], "inside the run folder"),
        (
            ["export", R0, "--format", "safetensors", "--out", f"{R0}/config.json", "--overwrite"],
            "inside the run",
        ),
        (["export", R0, "--format", "safetensors", "--out", f"{R0}/tb/x.st"], "inside the run"),
        ([*TR[:-1], R0, "--init", R0, "--overwrite"], "same run"),
        ([*TR[:-1], "c10/run"], "inside the data folder"),
        (["responses", R0, "--data-dir", "c10", "--out", "c10/r.json"], "inside the data folder"),
    ]
    for argv, says in cases:
        assert cli_main(argv) == 2, argv
        assert says in capsys.readouterr().err, argv
    assert snapshot(ws) == before
    (ws / R0 / "tb").rmdir()


def test_one_writer_per_run_folder(ws, tmp_path, capsys, monkeypatch):
    """Issue 32: a process training a run holds its folder's lock; a second train into it,
    new or --resume, is refused naming the holder; reading the run works meanwhile; the
    lock of a process that died (SIGKILL included: the kernel drops it) never blocks."""
    import subprocess
    import sys
    import textwrap

    from reslearn.rundir import RunLock

    monkeypatch.chdir(ws)
    run = tmp_path / "run"
    assert cli_main([*TR[:-1], str(run), "--iterations", "4"]) == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from reslearn.rundir import RunLock
            RunLock({str(run)!r}).acquire()
            print("held", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert cli_main(["train", "--resume", str(run), "--iterations", "6", "--progress", "none"]) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "is being written" in err
        assert cli_main([*TR[:-1], str(run), "--overwrite"]) == 2
        assert f"pid {holder.pid}" in capsys.readouterr().err
        assert cli_main(["export", str(run), "--format", "safetensors", "--out", str(tmp_path / "m.st")]) == 0
        holder.kill()
        holder.wait()
        RunLock(run).acquire().release()  # the dead holder's lock is gone
        assert cli_main(["train", "--resume", str(run), "--iterations", "6", "--progress", "none"]) == 0
    finally:
        holder.kill()


def test_data_paths_are_stored_absolute_and_resume_from_anywhere(ws, tmp_path, monkeypatch):
    monkeypatch.chdir(ws)
    run = tmp_path / "run"
    assert cli_main([*TR[:-1], str(run)]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data"]["data_dir"] == str(ws / "c10")
    monkeypatch.chdir(tmp_path)  # where no c10 exists
    assert cli_main(["train", "--resume", str(run), "--iterations", "3", "--progress", "none"]) == 0


def test_threads_above_the_cores_are_capped_with_a_warning(capsys):
    from reslearn.threads import ThreadPolicy, cpu_count

    with ThreadPolicy(100_000):
        assert torch.get_num_threads() == cpu_count()
    assert "capped" in capsys.readouterr().err


def test_damaged_metrics_and_published_index_are_named_not_tracebacks(ws, tmp_path, capsys, monkeypatch):
    """Issue 32: a damaged metrics.jsonl is named with its line (resume, report), a damaged
    index of the published nets is named (zoo, a net by name): one line, exit 2."""
    import shutil

    from reslearn import published

    monkeypatch.chdir(ws)
    run = tmp_path / "study" / "r-s1"
    shutil.copytree(ws / R0, run)
    (run / ".reslearn-lock").unlink(missing_ok=True)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 3, "lo\n')
    for argv in (["train", "--resume", str(run), "--iterations", "4"], ["report", str(tmp_path / "study")]):
        assert cli_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "metrics.jsonl' line 2 is not a metrics row" in err and "Traceback" not in err
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setattr(published, "WEIGHTS_DIR", weights)
    for text in ("{not json", '{"nets": [{"name": "x"}]}', '{"nets": 3}'):
        (weights / "index.json").write_text(text)
        for argv in (["zoo"], ["eval", "resnet20-cifar10"]):
            assert cli_main(argv) == 2, (argv, text)
            assert "index of the published nets, is damaged" in capsys.readouterr().err


def test_resume_on_changed_training_data_is_refused_unless_asked(ws, tmp_path, capsys, monkeypatch):
    """Issue 32: a run stores a fingerprint of its training list; --resume on data that
    changed since (an image added) is refused naming the run, and goes on with
    --data-changed, saying so. The same data moved elsewhere is the same data."""
    import shutil

    from reslearn.train import train

    from .helpers import train_cfg

    monkeypatch.chdir(ws)
    data = shutil.copytree(ws / "folder", tmp_path / "folder")
    run = train(train_cfg(data, tmp_path / "run", iterations=4, batch=2), stop_after=2)
    moved = shutil.move(data, tmp_path / "moved")
    assert cli_main(["train", "--resume", str(run), "--iterations", "4", "--data-dir", str(moved)]) == 0
    run = train(train_cfg(moved, tmp_path / "run2", iterations=4, batch=2), stop_after=2)
    Image.new("RGB", (32, 32), (9, 9, 9)).save(moved / "train" / "cat" / "new.png")
    assert cli_main(["train", "--resume", str(run), "--iterations", "4"]) == 2
    assert "training data of" in capsys.readouterr().err
    assert (
        cli_main(["train", "--resume", str(run), "--iterations", "4", "--data-changed", "--progress", "log"])
        == 0
    )
    assert "going on with it (--data-changed)" in capsys.readouterr().out
    assert cli_main([*TR[:-1], str(tmp_path / "fresh"), "--data-changed"]) == 2


def test_eval_says_when_a_folder_runs_training_images_changed(ws, tmp_path, capsys, monkeypatch):
    """Issue 32: eval of a run on a folder whose training images changed since says so (the
    held-out split may have moved), and says nothing when they did not."""
    import shutil

    monkeypatch.chdir(ws)
    data = shutil.copytree(ws / "photos", tmp_path / "photos")
    run = tmp_path / "run"
    argv = ["--data-dir", str(data), "--model", "cifar_resnet8", "--iterations", "2", "--batch-size", "2"]
    assert cli_main(["train", *argv, "--out", str(run), "--progress", "none", "--no-tensorboard"]) == 0
    capsys.readouterr()
    assert cli_main(["eval", str(run)]) == 0
    assert "changed since" not in capsys.readouterr().err
    Image.new("RGB", (32, 32), (1, 2, 3)).save(data / "train" / "ant" / "added.png")
    assert cli_main(["eval", str(run)]) == 0
    assert "the training images in" in capsys.readouterr().err
