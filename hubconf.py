"""torch.hub entry points: ``torch.hub.load("<owner>/reslearn" or a local checkout, "resnet56")``.

Every registered network is an entry point that builds it (paper defaults; keyword
options as ``reslearn.create_model``). ``pretrained=True`` needs a published weights URL;
none is published yet, so it is refused with a clear message.
"""

import os
import sys

dependencies = ["torch", "torchvision"]

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from reslearn.models import create_model, list_models  # noqa: E402

WEIGHT_URLS: dict[str, str] = {}  # name -> URL of a reslearn checkpoint, once published


def _entry(name: str):
    def build(pretrained: bool = False, **options):
        model = create_model(name, **options)
        if pretrained:
            url = WEIGHT_URLS.get(name)
            if url is None:
                raise ValueError(f"no pretrained weights are published for {name} yet; use pretrained=False")
            import torch

            state = torch.hub.load_state_dict_from_url(url, map_location="cpu", weights_only=True)
            model.load_state_dict(state.get("model", state))
        return model

    build.__name__ = name
    build.__doc__ = f"{name} of He et al. 2015 (reslearn); options as reslearn.create_model."
    return build


for _name in list_models():
    globals()[_name] = _entry(_name)
