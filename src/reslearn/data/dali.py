"""``--loader dali``: the ImageNet training pipeline on NVIDIA DALI (optional extra).

DALI decodes the JPEGs (on the GPU with nvJPEG where CUDA is used, "mixed" decoding; on
the CPU otherwise) and applies the same augmentation as the default loader: shorter side
to a random integer in [256, 480] (scaled with the crop), a random crop, a random flip.
Lighting noise and mean subtraction then run in torch, as for the default loader.
The image order is reslearn's (the seeded per-epoch permutation, sharded by rank, from
any step on). The crops and flips come from DALI's generator, seeded by (seed, epoch):
reproducible from the start of an epoch, but a run resumed in the middle of an epoch does
not see the crops the uninterrupted run would have (the default loader's does).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from .imagenet import ImageNetData


def dali_available() -> bool:
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return False
    return True


class DaliImageNetData(ImageNetData):
    """:class:`ImageNetData` whose training batches come from a DALI pipeline."""

    def __init__(self, *args, **kwargs) -> None:
        if not dali_available():
            raise ValueError(
                "--loader dali needs NVIDIA DALI: pip install 'reslearn[dali]' (nvidia-dali-cuda130); "
                "the default --loader stream works everywhere"
            )
        if kwargs.get("skip_bad_images"):
            raise ValueError("--skip-bad-images works with --loader stream (DALI stops at a bad JPEG)")
        super().__init__(*args, **kwargs)

    def _pipeline(self, plan: list[list[int]], epoch: int):
        from nvidia.dali import fn, pipeline_def, types

        files = self.items
        batches = iter(plan)

        def source():  # one batch of encoded files and labels, in reslearn's order
            try:
                idx = next(batches)
            except StopIteration:
                raise StopIteration from None
            data = [np.fromfile(files[i][0], dtype=np.uint8) for i in idx]
            return data, [np.array([files[i][1]], dtype=np.int64) for i in idx]

        cuda = self.device.type == "cuda"
        lo, hi = self.scale

        @pipeline_def(
            batch_size=max(len(b) for b in plan),
            num_threads=self.workers,
            device_id=self.device.index or 0 if cuda else None,
            seed=(self.seed * 1_000_003 + epoch) % (2**31),
            prefetch_queue_depth=2,
            exec_dynamic=True,
        )
        def pipe():
            jpegs, labels = fn.external_source(source=source, num_outputs=2, batch=True)
            img = fn.decoders.image(jpegs, device="mixed" if cuda else "cpu", output_type=types.RGB)
            shorter = fn.random.uniform(values=[float(s) for s in range(lo, hi + 1)])
            img = fn.resize(img, resize_shorter=shorter, antialias=True)
            img = fn.crop_mirror_normalize(
                img,
                crop=(self.size, self.size),
                crop_pos_x=fn.random.uniform(range=[0.0, 1.0]),
                crop_pos_y=fn.random.uniform(range=[0.0, 1.0]),
                mirror=fn.random.coin_flip(),
                dtype=types.UINT8,
                output_layout="CHW",
            )
            return img, labels

        p = pipe()
        p.build()
        return p

    def batches(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm, bs = self.epoch_indices(epoch), self.batch_size
        plan = [
            self.dist.shard(perm[p * bs : (p + 1) * bs]).tolist()
            for p in range(start, self.steps_per_epoch())
        ]
        if not plan:
            return
        pipe = self._pipeline(plan, epoch)
        for _ in plan:
            imgs, labels = pipe.run()
            x = torch.from_numpy(np.array(imgs.as_cpu().as_tensor())).to(self.device)
            y = torch.from_numpy(np.array(labels.as_tensor())).reshape(-1).to(self.device)
            yield self.pipeline(x, bs), y  # the lighting noise and normaliser, as ImageNetData
