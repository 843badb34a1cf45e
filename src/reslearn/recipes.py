"""The paper's training recipes as registered objects (Sections 4.2 and 3.4): the one
owner of each recipe's numbers and of which pipeline it trains with.

A recipe is not a model family: a CIFAR net is one shape of network, the cifar recipe one
way of training (it also trains an ImageNet-family net on small images, and any net on a
folder of small images). ``train.recipes.resolve`` fills an auto config from the recipe;
the data sets build the recipe's pipeline; evaluation takes its batch from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .registry import Registry


@dataclass(frozen=True)
class Recipe:
    name: str
    batch_size: int  # global mini-batch
    iterations: int  # run length when neither iterations nor epochs is given
    schedule: str  # an entry of reslearn.train.schedules.SCHEDULES
    loader: str  # "device": the uint8 set on the training device; "stream": files decoded by workers
    eval_batch_size: int  # images per evaluation batch (photos: also the most, for memory)
    photos: bool  # True: the photo pipeline (scale augmentation, crops of the net's input size,
    # tested on crops: Section 3.4); False: whole small images at their own size, pad-4 crop
    # and flip (Section 4.2)
    about: str = ""


RECIPES: Registry[Recipe] = Registry("recipe", reserved=("auto",))
register_recipe, get_recipe = RECIPES.add, RECIPES.lookup


register_recipe(
    Recipe("cifar", 128, 64_000, "milestones", "device", 1000, photos=False,
           about="Section 4.2: batch 128, lr 0.1 /10 at 32k and 48k, stop at 64k")
)  # fmt: skip
register_recipe(
    Recipe("imagenet", 256, 600_000, "plateau", "stream", 250, photos=True,
           about="Section 3.4: batch 256, lr 0.1 /10 when the error plateaus, up to 60e4 iterations")
)  # fmt: skip
