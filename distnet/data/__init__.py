"""The data layer: IDX files, the MNIST and Fashion-MNIST data sets, and digit pictures."""

from distnet.data.datasets import (Dataset, Splits, load_dataset, load_fashion_mnist, load_mnist,
                                   load_test_set)
from distnet.data.digits import Digit, render_digit
from distnet.data.idx import read_idx, write_idx

__all__ = [
    "Dataset",
    "Digit",
    "Splits",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "load_test_set",
    "read_idx",
    "render_digit",
    "write_idx",
]
