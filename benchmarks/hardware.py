"""The hardware limit: the float32 matrix-product rate of these cores, on large matrices (the best
case for the hardware) and on the shapes the article's network really has."""
from __future__ import annotations

import numpy as np

from .workloads import WORKLOADS, median_seconds


def _numpy_rate(m: int, k: int, n: int, repeats: int) -> float:
    rng = np.random.default_rng(0)
    a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    inner = max(1, int(2e9 // (2 * m * k * n)))
    np.matmul(a, b, out=out)
    return 2 * m * k * n / median_seconds(lambda: np.matmul(a, b, out=out), repeats, inner) / 1e9


def _torch_rate(size: int, threads: int, repeats: int) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    a, b = torch.rand(size, size), torch.rand(size, size)
    a @ b
    return 2 * size ** 3 / median_seconds(lambda: a @ b, repeats) / 1e9


def gemm(threads: int, size: int, repeats: int) -> dict:
    """GFLOP/s of a size × size float32 product (NumPy's BLAS and PyTorch's; the better is the
    hardware limit), and NumPy's rate at the article network's first-layer shapes."""
    article = WORKLOADS["article"]
    result = {"threads": threads, "numpy_gflops": _numpy_rate(size, size, size, repeats),
              "torch_gflops": _torch_rate(size, threads, repeats),
              "article_shape_gflops": _numpy_rate(article.batch_size, 784, article.hidden[0], repeats)}
    result["best_gflops"] = max(r for r in (result["numpy_gflops"], result["torch_gflops"]) if r is not None)
    return result
