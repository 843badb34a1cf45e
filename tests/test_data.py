import hashlib
import io
import os
import tarfile
import time
import urllib.error

import numpy as np
import pytest
import torch

from reslearn.data import DataError, crop_flip, fit_normalizer, load_cifar10, random_crop_flip
from reslearn.data import cifar as cifar_mod
from reslearn.data.augment import random_crop_flip_params
from reslearn.data.cifar import CACHE_KEEP, PICKLE_DIR, download_cifar10, find_source, source_key

from .helpers import synthetic_images, write_imagefolder, write_pickle_cifar


def test_pickle_format_all_three_layouts(tmp_path):
    root = write_pickle_cifar(tmp_path / "c10", per_batch=8, test=6)
    for d in (root, root / PICKLE_DIR):
        fmt, where = find_source(d)
        assert fmt == "pickle" and where == root / PICKLE_DIR
    a = load_cifar10(root, download=False)
    assert a.format == "pickle"
    assert a.train_x.shape == (40, 3, 32, 32) and a.train_x.dtype == torch.uint8
    assert a.test_x.shape == (6, 3, 32, 32) and a.train_y.dtype == torch.int64
    x1, y1 = synthetic_images(8, seed=1)
    assert np.array_equal(a.train_x[:8].numpy(), x1) and a.train_y[:8].tolist() == y1.tolist()


def test_imagefolder_format(tmp_path):
    root = write_imagefolder(tmp_path / "imgs")
    fmt, _ = find_source(root)
    a = load_cifar10(root, download=False)
    assert fmt == "imagefolder" and a.classes == ("cat", "dog", "frog")
    assert a.train_x.shape == (9, 3, 32, 32) and a.train_y.tolist() == [0] * 3 + [1] * 3 + [2] * 3
    # PNG is lossless: the odd-numbered files decode to exactly what was written.
    x0, _ = synthetic_images(3, seed=0)
    assert np.array_equal(a.train_x[1].numpy(), x0[1])


def test_cache_is_used_and_invalidated(tmp_path):
    root = write_pickle_cifar(tmp_path / "c10", per_batch=4, test=4)
    a = load_cifar10(root, download=False)
    cached = list((tmp_path / "cache").glob("cifar10-*.pt"))
    assert len(cached) == 1
    b = load_cifar10(root, download=False)
    assert torch.equal(a.train_x, b.train_x)
    # Rewrite one batch with other images: the key changes, the new pixels are read.
    x, y = synthetic_images(4, seed=123)
    cifar_mod.write_pickle_batch(root / PICKLE_DIR / "data_batch_1", x, y.tolist())
    c = load_cifar10(root, download=False)
    assert np.array_equal(c.train_x[:4].numpy(), x)
    assert len(list((tmp_path / "cache").glob("cifar10-*.pt"))) == 2


def test_cache_keeps_only_the_most_recently_used_data_sets(tmp_path):
    cache = tmp_path / "cache"
    roots = [write_pickle_cifar(tmp_path / f"c{i}", per_batch=2, test=2) for i in range(CACHE_KEEP + 1)]

    def entry(root):
        return cache / f"cifar10-{source_key('pickle', root / PICKLE_DIR)}.pt"

    past = time.time_ns() - 10**12  # fixed ages, oldest first: no two files share an mtime
    for i, root in enumerate(roots[:CACHE_KEEP]):
        load_cifar10(root, download=False)
        os.utime(entry(root), ns=(past + i * 10**9,) * 2)
    theirs = cache / "cifar10-notes.pt"  # not a name load_cifar writes: never pruned
    theirs.write_text("kept")
    first = load_cifar10(roots[0], download=False)  # a hit makes the oldest entry the newest
    assert first.train_x.shape[0] == 10
    load_cifar10(roots[CACHE_KEEP], download=False)  # a new entry: the least recently used goes
    kept = {p.name for p in cache.glob("cifar10-*.pt")}
    assert kept == {theirs.name} | {entry(r).name for r in (roots[0], *roots[2:])}
    assert not entry(roots[1]).exists()


def test_offline_download_error_names_url_layout_and_flag(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(cifar_mod.urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as e:
        load_cifar10(tmp_path / "nothing", download=True)
    msg = str(e.value)
    assert cifar_mod.CIFAR10_URL in msg and "--data-dir" in msg and "cifar-10-batches-py" in msg
    assert "train/<class>" in msg
    assert not (tmp_path / "nothing").exists()  # no partial archive, and no folder made
    with pytest.raises(DataError, match="no CIFAR-10 data"):
        load_cifar10(tmp_path / "nothing", download=False)


def _archive(tmp_path) -> bytes:
    src = write_pickle_cifar(tmp_path / "src", per_batch=4, test=4)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / PICKLE_DIR, arcname=PICKLE_DIR)
    return buf.getvalue()


def test_download_verifies_md5_and_never_half_uses(tmp_path):
    blob = _archive(tmp_path)
    good = tmp_path / "good.tar.gz"
    good.write_bytes(blob)
    md5 = hashlib.md5(blob).hexdigest()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(blob[: len(blob) // 2])
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match="corrupt or truncated"):
        download_cifar10(dest / "cifar10", url=truncated.as_uri(), md5=md5)
    assert not dest.exists()  # nothing unpacked, no temporary, not even the folders it made
    dest.mkdir()
    with pytest.raises(DataError, match="downloading it from .* failed"):
        download_cifar10(dest, url=(tmp_path / "absent.tar.gz").as_uri(), md5=md5)  # offline, say
    assert list(dest.iterdir()) == []  # a folder that was there stays
    download_cifar10(dest, url=good.as_uri(), md5=md5)
    assert find_source(dest)[0] == "pickle"
    assert len(load_cifar10(dest, download=False).train_x) == 20


def test_crop_flip_per_sample_and_inside_padded_image():
    n, pad = 64, 4
    x = torch.arange(n * 3 * 32 * 32, dtype=torch.int64).reshape(n, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    dy, dx, flip = random_crop_flip_params(n, pad, g)
    assert dy.min() >= 0 and dy.max() <= 2 * pad and dx.min() >= 0 and dx.max() <= 2 * pad
    assert len(set(zip(dy.tolist(), dx.tolist()))) > 20  # each image its own offsets
    assert 0 < flip.sum() < n  # and its own flip
    out = crop_flip(x, dy, dx, flip, pad)
    xp = torch.nn.functional.pad(x, (pad,) * 4)
    for i in range(n):
        ref = xp[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        if flip[i]:
            ref = ref.flip(-1)
        assert torch.equal(out[i], ref)
    # uint8 images keep their dtype; the seeded generator makes it reproducible.
    u = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    a = random_crop_flip(u, generator=torch.Generator().manual_seed(1))
    b = random_crop_flip(u, generator=torch.Generator().manual_seed(1))
    assert a.dtype == torch.uint8 and torch.equal(a, b)


def test_normalizers():
    x = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8)
    pix = fit_normalizer(x, "pixel")
    assert pix.mean.shape == (3, 32, 32)
    assert torch.allclose(pix(x).mean(0), torch.zeros(3, 32, 32), atol=1e-5)
    ch = fit_normalizer(x, "channel")
    y = ch(x)
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(y.std((0, 2, 3)), torch.ones(3), atol=1e-3)
    with pytest.raises(ValueError, match="'global'"):
        fit_normalizer(x, "global")


@pytest.mark.parametrize("normalize", ["pixel", "channel"])
def test_the_pad_holds_black_or_the_mean_and_the_crops_are_the_same(normalize):
    from reslearn.data.augment import SmallImagePipeline
    from reslearn.distributed import DistInfo

    x = torch.randint(1, 256, (64, 3, 32, 32), dtype=torch.uint8)  # no black pixel of its own
    norm = fit_normalizer(x, normalize)
    out = {
        fill: SmallImagePipeline(norm, torch.Generator().manual_seed(3), DistInfo(), pad_fill=fill)(x, 64)
        for fill in ("black", "mean")
    }
    # The same draws: the same pixels land in the same places, only the pad differs.
    params = random_crop_flip_params(64, 4, torch.Generator().manual_seed(3))
    pad = crop_flip(torch.ones_like(x), *params, 4) == 0
    black = norm(torch.zeros_like(x))  # a black pixel, normalised where the crop puts it: -mean / std
    assert pad.any() and torch.equal(out["black"][pad], black[pad])
    assert not out["mean"][pad].any()  # the network's zero input: the mean
    # Inside the image the two differ only by where the mean image lines up: with the crop
    # (black) or with the image (mean); a per-channel mean lines up everywhere.
    with_image = crop_flip(norm.mean.expand(64, 3, 32, 32).contiguous(), *params, 4)
    moved = ((with_image - norm.mean) / norm.std)[~pad]
    assert torch.allclose((out["black"] - out["mean"])[~pad], moved, atol=1e-6)
    assert (normalize == "pixel") == bool(moved.abs().max() > 1e-3)
    with pytest.raises(ValueError, match="'grey'"):
        SmallImagePipeline(norm, torch.Generator(), DistInfo(), pad_fill="grey")


def test_the_mean_image_is_the_correctly_rounded_exact_mean():
    """Exact integer sums, one rounding: the same bits on every CPU kind and thread count
    (a float32 reduction's last bit depends on the vector width)."""
    x = torch.randint(0, 256, (10_000, 3, 8, 8), dtype=torch.uint8)
    exact = (x.double().sum(0) / (255.0 * len(x))).float()  # float64 sums of integers < 2^53: exact
    assert torch.equal(fit_normalizer(x, "pixel").mean, exact)
    ch = fit_normalizer(x, "channel")
    d = x.double().transpose(0, 1).reshape(3, -1) / 255.0
    assert torch.equal(ch.mean.flatten(), d.mean(1).float())
    assert torch.allclose(ch.std.flatten().double(), d.std(1), rtol=1e-6)


def test_original_cifar10_is_read_from_its_canonical_batches(cifar10):
    """The project's CIFAR-10 (the official python batches, unpacked from the shared
    lossless copy) through the cifar10 data set: pickle format, the official class names
    and order, 5,000 and 1,000 images a class."""
    a = load_cifar10(cifar10, download=False)
    assert a.format == "pickle" and a.classes[0] == "airplane" and a.classes[-1] == "truck"
    assert a.train_x.shape == (50_000, 3, 32, 32) and a.test_x.shape == (10_000, 3, 32, 32)
    assert a.train_y.bincount().tolist() == [5000] * 10
    assert a.test_y.bincount().tolist() == [1000] * 10
    # The official test_batch starts with a cat, then two ships (batches.meta's order).
    assert a.test_y[:3].tolist() == [3, 8, 8]


def test_shared_cifar10_jpeg(shared_data, monkeypatch):
    """The JPEG copy stays as the test of the image-folder path on a full-size tree."""
    monkeypatch.delenv("RESLEARN_CACHE_DIR")  # reuse the user's cache across runs
    a = load_cifar10(shared_data / "cifar10-jpeg", download=False)
    assert a.format == "imagefolder" and a.classes[0] == "airplane" and a.classes[-1] == "truck"
    assert a.train_x.shape == (50_000, 3, 32, 32) and a.test_x.shape == (10_000, 3, 32, 32)
    assert a.train_y.bincount().tolist() == [5000] * 10
    assert a.test_y.bincount().tolist() == [1000] * 10


def test_a_partial_batches_folder_of_the_users_is_never_replaced_by_a_download(tmp_path):
    """Issue 32: an incomplete cifar-10-batches-py/ (the user's files) stops the download
    with a message naming it; nothing in it is removed."""
    partial = tmp_path / "c10" / "cifar-10-batches-py"
    partial.mkdir(parents=True)
    (partial / "data_batch_1").write_bytes(b"mine")
    (partial / "notes.txt").write_text("keep")
    with pytest.raises(DataError, match="not a complete CIFAR-10.*does not replace it"):
        load_cifar10(tmp_path / "c10", download=True)
    assert sorted(p.name for p in partial.iterdir()) == ["data_batch_1", "notes.txt"]
