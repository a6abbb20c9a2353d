"""Random affine augmentation: exact geometry on known transforms, seeding, and real digits."""
import re

import numpy as np
import pytest

from distnet import ConfigError
from distnet.data.augment import RandomAffine, augmentation_from_spec


class Fixed:
    """A stand-in generator that draws the upper bound of every range: the largest transform."""

    def uniform(self, low, high, size):
        return np.full(size, float(high))


def pictures(images):
    return images.reshape(len(images), 28, 28)


def test_no_movement_gives_the_images_back_exactly(mnist):
    images = mnist.train.images[:100]
    assert np.array_equal(RandomAffine(0, 0, 0).epoch(images, seed=1, epoch=0), images)


def test_a_whole_pixel_shift_moves_every_pixel(mnist):
    images = mnist.train.images[:5]
    moved = pictures(RandomAffine(rotation=0, scale=0, shift=2).transform(images, Fixed()))
    original = pictures(images)
    # +2 px right and down; what comes in from outside is black.
    assert np.array_equal(moved[:, 2:, 2:], original[:, :-2, :-2])
    assert not moved[:, :2, :].any() and not moved[:, :, :2].any()



def test_what_comes_in_from_outside_is_black_beside_a_white_edge_too():
    """Real digits have black edges, which hides what is read from outside the picture: here every
    pixel is white, so only the zero border outside gives black."""
    white = np.ones((2, 784), np.float32)
    moved = pictures(RandomAffine(rotation=0, scale=0, shift=3).transform(white, Fixed()))
    assert not moved[:, :3, :].any() and not moved[:, :, :3].any()
    assert (moved[:, 3:, 3:] == 1).all()


def test_a_quarter_turn_rotates_the_picture():
    rng = np.random.default_rng(0)
    images = rng.random((3, 784)).astype(np.float32)
    turned = pictures(RandomAffine(rotation=90, scale=0, shift=0).transform(images, Fixed()))
    # 90° about the centre maps pixels onto pixels; which way round is a matter of convention.
    assert any(np.allclose(turned, np.rot90(pictures(images), k, axes=(1, 2)), atol=1e-5) for k in (1, 3))


def test_scaling_up_spreads_a_centred_blob():
    blob = np.zeros((1, 28, 28), np.float32)
    blob[0, 12:16, 12:16] = 1
    bigger = RandomAffine(rotation=0, scale=0.5, shift=0).transform(blob.reshape(1, 784), Fixed())
    assert bigger.sum() == pytest.approx(1.5 ** 2 * blob.sum(), rel=0.15)


def test_same_seed_epoch_shard_same_pixels_and_each_key_differs(mnist):
    images = mnist.train.images[:200]
    augment = RandomAffine()
    first = augment.epoch(images, seed=3, epoch=4, shard=1)
    assert np.array_equal(first, augment.epoch(images, seed=3, epoch=4, shard=1))
    for other in [dict(seed=4, epoch=4, shard=1), dict(seed=3, epoch=5, shard=1), dict(seed=3, epoch=4, shard=0)]:
        assert not np.array_equal(first, augment.epoch(images, **other))


def test_chunking_inside_does_not_change_a_pixel(mnist, monkeypatch):
    # Each image's transform is drawn up front, before the images are warped chunk by chunk.
    import distnet.data.augment as augment_module

    images = mnist.train.images[:100]
    whole = RandomAffine().epoch(images, seed=9, epoch=0)
    monkeypatch.setattr(augment_module, "_CHUNK", 7)
    assert np.array_equal(whole, RandomAffine().epoch(images, seed=9, epoch=0))


def test_augmented_digits_stay_digits(mnist):
    images = mnist.train.images[:2000]
    moved = RandomAffine().epoch(images, seed=1, epoch=0)
    assert moved.dtype == images.dtype and moved.shape == images.shape
    assert moved.min() >= 0 and moved.max() <= 1
    # Small moves: ink is roughly kept, and every image changed.
    ink_ratio = moved.sum(axis=1) / images.sum(axis=1)
    assert 0.7 < np.median(ink_ratio) < 1.3
    assert (np.abs(moved - images).sum(axis=1) > 0).all()


def test_float64_images_stay_float64(mnist):
    images = mnist.train.images[:10].astype(np.float64)
    assert RandomAffine().epoch(images, seed=1, epoch=0).dtype == np.float64


def test_output_buffer_is_filled_in_place(mnist):
    images = mnist.train.images[:50]
    out = np.empty_like(images)
    result = RandomAffine().epoch(images, seed=1, epoch=2, out=out)
    assert result is out and np.array_equal(out, RandomAffine().epoch(images, seed=1, epoch=2))


def test_spec_round_trip_and_bad_settings():
    augment = RandomAffine(5, 0.05, 1)
    assert augmentation_from_spec(augment.spec()).spec() == augment.spec()
    assert augmentation_from_spec(None) is None
    with pytest.raises(ConfigError, match="scale"):
        RandomAffine(scale=1.5)
    with pytest.raises(ConfigError, match=r"in \[0, 1\)"):
        RandomAffine(scale=1)  # a zoom that can reach 0: a division by zero
    with pytest.raises(ConfigError, match="unknown augmentation 'flip'"):
        augmentation_from_spec({"name": "flip"})
    with pytest.raises(ConfigError, match=r"shape \(n, 784\)"):
        RandomAffine().epoch(np.zeros((3, 10), np.float32), seed=1, epoch=0)


def test_the_key_is_whole_numbers_of_at_least_0():
    # A negative seed had raised numpy's "expected non-negative integer", None a TypeError.
    images = np.zeros((2, 784), np.float32)
    for name, key in (("seed", dict(seed=-1, epoch=0)), ("seed", dict(seed=None, epoch=0)),
                      ("epoch", dict(seed=1, epoch=1.5)), ("shard", dict(seed=1, epoch=0, shard=-2))):
        with pytest.raises(ConfigError) as refused:
            RandomAffine().epoch(images, **key)
        assert str(refused.value) == (f"the augmentation's {name} must be a whole number of at least 0, "
                                      f"got {key[name]!r}")
    assert np.array_equal(RandomAffine().epoch(images + 1, seed=np.int64(3), epoch=np.int32(4), shard=np.uint8(1)),
                          RandomAffine().epoch(images + 1, seed=3, epoch=4, shard=1))


def test_the_output_is_a_separate_writable_float_array_of_the_images_shape():
    images = np.random.default_rng(0).random((40, 784))
    # An integer out had kept the moved pixels truncated (all 0 here).
    for out, given in ((np.zeros((40, 784), np.int64), "int64 data of shape (40, 784)"),
                       (np.zeros((40, 28, 28)), "float64 data of shape (40, 28, 28)"),
                       (np.zeros((40, 784)).tolist(), "list")):
        with pytest.raises(ConfigError) as refused:
            RandomAffine().epoch(images, seed=1, epoch=0, out=out)
        assert str(refused.value) == ("augmentation writes to out, which must be a writable float array of shape "
                                      f"(40, 784) (such as np.empty_like(images)); got {given}")
    read_only = np.zeros((40, 784), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ConfigError, match=r"; got read-only float32 data of shape \(40, 784\)$"):
        RandomAffine().epoch(images, seed=1, epoch=0, out=read_only)
    # Shifted by some rows, the output had overwritten images not yet moved.
    shared = np.concatenate([images, np.zeros((8, 784))])
    with pytest.raises(ConfigError) as refused:
        RandomAffine().epoch(shared[:40], seed=1, epoch=0, out=shared[8:])
    assert str(refused.value) == ("augmentation writes to out, which must not share memory with the images: give a "
                                  "separate array (such as np.empty_like(images))")
    into32 = RandomAffine().epoch(images, seed=1, epoch=0, out=np.empty((40, 784), np.float32))
    assert np.array_equal(into32, RandomAffine().epoch(images, seed=1, epoch=0).astype(np.float32))


def test_image_bytes_are_refused_with_how_to_scale_them():
    # Their interpolation weights had been cast to bytes (0): every pixel read its top-left neighbour.
    with pytest.raises(ConfigError) as refused:
        RandomAffine().epoch(np.full((2, 784), 200, np.uint8), seed=1, epoch=0)
    assert str(refused.value) == ("augmentation's images must be floating-point values, got uint8 (image bytes: "
                                  "images.astype(np.float32) / 255, as MNIST's are scaled; other numbers: "
                                  "images.astype(np.float32))")


def test_an_augmentation_is_taken_as_it_is_as_the_other_components_are():
    moves = RandomAffine(rotation=5)
    assert augmentation_from_spec(moves) is moves  # as optimizer_from_spec and schedule_from_spec take theirs
    assert augmentation_from_spec(moves.spec()).spec() == moves.spec()
    with pytest.raises(ConfigError, match=re.escape("augmentation RandomAffine is a class: pass an instance, "
                                                    "RandomAffine()")):
        augmentation_from_spec(RandomAffine)


class _Draws:
    """A stand-in generator whose uniform() returns the given values, in the order transform draws."""

    def __init__(self, *values):
        self.values = list(values)

    def uniform(self, low, high, size):
        return np.broadcast_to(np.asarray(self.values.pop(0), dtype=np.float64), size).copy()


def test_a_half_pixel_vertical_shift_averages_each_row_with_the_one_above():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, 784)
    # angle 0, zoom 1, dx 0, dy 0.5: output pixel (r, c) reads the source at row r - 0.5
    moved = RandomAffine(rotation=0, scale=0, shift=1).transform(image[None], _Draws(0.0, 1.0, [[0.0], [0.5]]))
    src = image.reshape(28, 28)
    above = np.vstack([np.zeros((1, 28)), src[:-1]])
    np.testing.assert_allclose(moved.reshape(28, 28), (src + above) / 2, rtol=0, atol=1e-6)


def test_a_quarter_pixel_diagonal_shift_is_bilinear():
    image = np.zeros(784)
    image[14 * 28 + 14] = 1.0  # one lit pixel
    moved = RandomAffine(rotation=0, scale=0, shift=1).transform(image[None], _Draws(0.0, 1.0, [[0.25], [0.25]]))
    m = moved.reshape(28, 28)
    # the lit pixel's weight spreads over (14,14), (14,15), (15,14), (15,15)
    np.testing.assert_allclose([m[14, 14], m[14, 15], m[15, 14], m[15, 15]],
                               [0.75 * 0.75, 0.75 * 0.25, 0.25 * 0.75, 0.25 * 0.25], atol=1e-6)
    assert m.sum() == pytest.approx(1.0, abs=1e-6)


def test_the_augmentation_draws_are_not_the_shuffle_generators():
    images = np.random.default_rng(1).uniform(0, 1, (4, 784))
    augment = RandomAffine(rotation=10, scale=0.1, shift=2)
    mine = augment.epoch(images, seed=3, epoch=1, shard=0)
    shuffles = augment.transform(images, np.random.default_rng([3, 1, 0]))  # BatchPlan's key for that shard
    assert not np.allclose(mine, shuffles)
