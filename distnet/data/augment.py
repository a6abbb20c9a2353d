"""Random affine augmentation of 28x28 images: a new small rotation, scale and shift of every
training image at every epoch, so the network never sees exactly the same digit twice.

Vectorised NumPy with bilinear interpolation (pixels outside the picture are 0); a 50,000-image
epoch takes about 0.6 s of one core (measured on the 2-core development machine). The random
transforms come from a generator seeded with (seed, epoch, shard), the key the batch plan uses for
its shuffles, so every training path (one process, or N workers each augmenting its own shard)
sees the same pixels for the same seed, and a resumed run needs no generator state.
"""
from __future__ import annotations

import numbers

import numpy as np

from distnet.checks import Checked, checked_number, floating_point, whole_number
from distnet.data.digits import PIXELS, SIDE
from distnet.errors import ConfigError
from distnet.spec import component

__all__ = ["RandomAffine", "augmentation_from_spec"]

# Tells the augmentation's generator apart from the batch plan's shuffle generator, which is
# seeded with the same (seed, epoch, shard).
_STREAM = 0xA0F
# Images transformed at once: enough to amortise NumPy's per-call cost, few enough that the
# (chunk, 784) temporaries stay small: larger ones are mapped fresh from the OS on every call, and
# the page faults cost more than the arithmetic.
_CHUNK = 32
# The source picture padded with a zero border of one pixel, so that every bilinear neighbour of
# a clipped coordinate is a valid index and the outside reads as 0.
_PADDED = SIDE + 2


class RandomAffine:
    """Rotate by up to ±``rotation`` degrees, scale by 1 ± up to ``scale``, shift by up to
    ±``shift`` pixels along each axis; every image gets its own uniformly drawn transform about
    the picture's centre.

    >>> augment = RandomAffine(rotation=10, scale=0.1, shift=2)
    >>> moved = augment.epoch(train.images, seed=1, epoch=0, shard=0)   # new array, same shape
    """

    name = "random_affine"
    rotation = Checked(lambda name, value: checked_number("the augmentation's rotation", value, numbers.Real,
                                                          lambda v: 0 <= v <= 180, "in [0, 180] degrees"))
    scale = Checked(lambda name, value: checked_number("the augmentation's scale", value, numbers.Real,
                                                       lambda v: 0 <= v < 1, "a fraction in [0, 1)"))
    shift = Checked(lambda name, value: checked_number("the augmentation's shift", value, numbers.Real,
                                                       lambda v: 0 <= v <= SIDE, f"in [0, {SIDE}] pixels"))

    def __init__(self, rotation: float = 10.0, scale: float = 0.1, shift: float = 2.0):
        self.rotation, self.scale, self.shift = rotation, scale, shift

    def spec(self) -> dict:
        """The settings as JSON values, as a run's config.json records them."""
        return {"name": self.name, "rotation": self.rotation, "scale": self.scale, "shift": self.shift}

    def __repr__(self) -> str:
        return f"RandomAffine(rotation={self.rotation:g}, scale={self.scale:g}, shift={self.shift:g})"

    def epoch(self, images: np.ndarray, seed: int, epoch: int, shard: int = 0,
              out: np.ndarray | None = None) -> np.ndarray:
        """This epoch's transformed copy of one shard's ``(n, 784)`` images (into ``out`` if given)."""
        key = [whole_number(f"the augmentation's {name}", value, 0)
               for name, value in (("seed", seed), ("epoch", epoch), ("shard", shard))]
        rng = np.random.default_rng([*key, _STREAM])
        return self.transform(images, rng, out)

    def transform(self, images: np.ndarray, rng: np.random.Generator,
                  out: np.ndarray | None = None) -> np.ndarray:
        """Each row of ``images`` moved by its own random transform from ``rng``, written to
        ``out`` (a new array by default; reusing one spares a large allocation per epoch)."""
        images = np.asarray(images)
        if images.ndim != 2 or images.shape[1] != PIXELS:
            raise ConfigError(f"augmentation takes images of shape (n, {PIXELS}), got {images.shape}")
        # The interpolation weights take the images' dtype: in integers they would all be 0.
        floating_point("augmentation's images", images, "images")
        if out is None:
            out = np.empty_like(images)
        # Integers would truncate the moved pixels.
        elif (not isinstance(out, np.ndarray) or out.dtype.kind != "f" or out.shape != images.shape
              or not out.flags.writeable):
            given = (f"{'' if out.flags.writeable else 'read-only '}{out.dtype} data of shape {out.shape}"
                     if isinstance(out, np.ndarray) else type(out).__name__)
            raise ConfigError(f"augmentation writes to out, which must be a writable float array of shape "
                              f"{images.shape} (such as np.empty_like(images)); got {given}")
        # Chunk by chunk, an output overlapping the images would overwrite rows not yet read.
        elif np.may_share_memory(out, images):
            raise ConfigError("augmentation writes to out, which must not share memory with the images: give a "
                              "separate array (such as np.empty_like(images))")
        n = len(images)
        # All draws up front, so the transforms do not depend on the chunking.
        angle = np.deg2rad(rng.uniform(-self.rotation, self.rotation, n))
        zoom = rng.uniform(1 - self.scale, 1 + self.scale, n)
        dx, dy = rng.uniform(-self.shift, self.shift, (2, n))
        # Each output pixel p reads the source at R(-angle)·(p - c - d)/zoom + c (c: the centre).
        cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
        inverse = np.stack([cos, sin, -sin, cos], axis=1).astype(np.float32)
        offset = np.stack([dx, dy], axis=1).astype(np.float32)
        for lo in range(0, n, _CHUNK):
            hi = min(lo + _CHUNK, n)
            out[lo:hi] = _warp(images[lo:hi], inverse[lo:hi], offset[lo:hi])
        return out


def _warp(images: np.ndarray, inverse: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Bilinear resampling of each image at its inverse-transformed pixel grid.

    In place wherever possible, and gathers with ``np.take``: fancy indexing and fresh
    temporaries cost several times the arithmetic here.
    """
    n = len(images)
    centre = (SIDE - 1) / 2
    grid = np.arange(SIDE, dtype=np.float32) - centre
    u = np.tile(grid, SIDE)[None, :] - offset[:, :1]    # x of every output pixel, row-major
    v = np.repeat(grid, SIDE)[None, :] - offset[:, 1:]  # y
    # Coordinates in the padded picture (the source's pixel 0 is at 1); outside reads the border.
    x = inverse[:, :1] * u
    x += inverse[:, 1:2] * v
    x += centre + 1
    y = inverse[:, 2:3] * u
    y += inverse[:, 3:4] * v
    y += centre + 1
    np.clip(x, 0, _PADDED - 1, out=x)
    np.clip(y, 0, _PADDED - 1, out=y)
    # The last pixel interpolates towards its right/lower neighbour with weight 1.
    x0 = np.minimum(np.floor(x), _PADDED - 2)
    y0 = np.minimum(np.floor(y), _PADDED - 2)
    fx = (x - x0).astype(images.dtype, copy=False)
    fy = (y - y0).astype(images.dtype, copy=False)
    padded = np.zeros((n, _PADDED, _PADDED), dtype=images.dtype)
    padded[:, 1:-1, 1:-1] = images.reshape(n, SIDE, SIDE)
    flat = padded.ravel()
    y0 *= _PADDED
    y0 += x0
    index = y0.astype(np.intp)
    index += (np.arange(n) * _PADDED * _PADDED)[:, None]
    top = _lerp(flat, index, fx)
    index += _PADDED
    bottom = _lerp(flat, index, fx)
    bottom -= top
    bottom *= fy
    top += bottom
    return top


def _lerp(flat: np.ndarray, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """flat[index] + weight·(flat[index + 1] − flat[index]), elementwise."""
    left = np.take(flat, index)
    right = np.take(flat, index + 1)
    right -= left
    right *= weight
    left += right
    return left


AUGMENTATIONS = {RandomAffine.name: RandomAffine}


def augmentation_from_spec(spec: RandomAffine | dict | str | None) -> RandomAffine | None:
    """The augmentation :meth:`RandomAffine.spec` describes (a :class:`RandomAffine` is returned
    as it is); ``None`` for none."""
    return None if spec is None else component(spec, RandomAffine, AUGMENTATIONS, "augmentation")
