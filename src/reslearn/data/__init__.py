from .augment import Normalizer, crop_flip, fit_normalizer, random_crop_flip
from .cifar import (
    CIFAR10_MD5,
    CIFAR10_URL,
    CifarArrays,
    download_cifar10,
    find_source,
    load_cifar10,
)
from .folders import DataError

__all__ = [
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "CifarArrays",
    "DataError",
    "Normalizer",
    "crop_flip",
    "download_cifar10",
    "fit_normalizer",
    "find_source",
    "load_cifar10",
    "random_crop_flip",
]
