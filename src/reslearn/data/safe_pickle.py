"""The one way reslearn reads a data pickle: a restricted unpickler (issue 32).

``pickle.load`` calls whatever global a file names, so a data set's ``batches.meta`` that
names ``os.system`` runs a command. The CIFAR-10/100 python batches hold only dicts,
lists, str/bytes, ints and numpy arrays; the unpickler below resolves exactly the globals
those need (numpy's array and dtype reconstructors, under their numpy 1 and numpy 2
module names) and refuses every other, naming the file and the global, before anything
is called. Checkpoints are read by ``torch.load(weights_only=True)`` (reslearn.checkpoint).
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
from pathlib import Path

from .imagefiles import DataError

# (module, name) -> the module to import it from today. numpy 2 moved numpy.core to
# numpy._core; files written by numpy 1 (the official CIFAR batches) name the old module.
_NUMPY_CORE = "numpy._core" if importlib.util.find_spec("numpy._core") else "numpy.core"
ALLOWED = {
    ("numpy", "ndarray"): "numpy",
    ("numpy", "dtype"): "numpy",
    ("_codecs", "encode"): "_codecs",  # protocol 2 writes bytes as _codecs.encode(str, "latin1")
    **{
        (f"{core}.{mod}", name): f"{_NUMPY_CORE}.{mod}"
        for core in ("numpy.core", "numpy._core")
        for mod, name in (
            ("multiarray", "_reconstruct"),
            ("multiarray", "scalar"),
            ("numeric", "_frombuffer"),
        )
    },
}


class DataPickleRefused(DataError):
    """A data pickle names a global outside :data:`ALLOWED`."""


class SafeUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path, **kw) -> None:
        super().__init__(file, **kw)
        self.path = path

    def find_class(self, module: str, name: str):
        where = ALLOWED.get((module, name))
        if where is None:
            raise DataPickleRefused(
                f"{str(self.path)!r} is not a plain data file: it asks to load the global "
                f"{module}.{name}, which a CIFAR batch never holds; refused (nothing was run)"
            )
        return getattr(importlib.import_module(where), name)


def load_pickle(path: str | Path, encoding: str = "latin1"):
    """The object in the data pickle at ``path``, read without running anything it names
    (``latin1``: the official batches were written by Python 2)."""
    path = Path(path)
    with open(path, "rb") as f:
        return SafeUnpickler(f, path, encoding=encoding).load()
