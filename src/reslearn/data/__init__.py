from .augment import Normalizer, crop_flip, fit_normalizer, random_crop_flip
from .base import DataSet
from .cifar import (
    CIFAR10_MD5,
    CIFAR10_URL,
    CifarArrays,
    download_cifar10,
    find_source,
    load_cifar10,
)
from .datasets import DATASETS, get_dataset, register_dataset
from .imagefiles import DataError

__all__ = [
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "CifarArrays",
    "DATASETS",
    "DataError",
    "DataSet",
    "Normalizer",
    "crop_flip",
    "download_cifar10",
    "fit_normalizer",
    "find_source",
    "get_dataset",
    "load_cifar10",
    "random_crop_flip",
    "register_dataset",
]
