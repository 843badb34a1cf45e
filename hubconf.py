"""torch.hub entry points: ``torch.hub.load("<owner>/reslearn" or a local checkout, "resnet56")``.

Every registered network is an entry point that builds it (paper defaults; keyword
options as ``reslearn.create_model``). ``pretrained=True`` returns the net's best published
weights (``reslearn zoo``: files in the repository, sha256-checked; a net trained on the
original CIFAR-10 before one trained on a lossy copy), in eval mode; for a net with none
published it is refused with a clear message.
"""

import os
import sys

dependencies = ["torch", "torchvision"]

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from reslearn.models import create_model, list_models  # noqa: E402


def _entry(name: str):
    def build(pretrained: bool = False, **options):
        if not pretrained:
            return create_model(name, **options)
        from reslearn import published
        from reslearn.use import load

        entry = published.for_model(name)
        if entry is None:
            raise ValueError(
                f"no trained {name} is published yet (`reslearn zoo` lists them); use pretrained=False"
            )
        if options:
            raise ValueError(f"pretrained=True gives the published net as it is; drop {sorted(options)}")
        return load(entry["name"])[0]

    build.__name__ = name
    build.__doc__ = f"{name} of He et al. 2015 (reslearn); options as reslearn.create_model."
    return build


for _name in list_models():
    globals()[_name] = _entry(_name)
