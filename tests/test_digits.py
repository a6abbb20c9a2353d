"""The text picture of a digit, in the format of the original Java DigitData."""

from __future__ import annotations

import numpy as np
import pytest

from distnet.commands.predict import read_images
from distnet.data import Dataset, Digit, render_digit
from distnet.errors import ConfigError, DataFormatError

SHADES = " .:-=+*#%@"


def test_layout() -> None:
    lines = render_digit(np.zeros(784), "label 5, predicted 3").split("\n")
    assert len(lines) == 31
    assert lines[0] == "label 5, predicted 3"
    assert lines[1] == lines[30] == "-" * 30
    assert lines[2:30] == ["|" + " " * 28 + "|"] * 28


def test_pixels_are_drawn_row_by_row() -> None:
    pixels = np.zeros((28, 28))
    pixels[0, 0] = 1.0  # top left
    pixels[0, 27] = 0.55  # top right
    pixels[27, 0] = 0.15  # bottom left
    lines = render_digit(pixels.reshape(-1), "x").split("\n")
    assert lines[2] == "|@" + " " * 26 + "+|"
    assert lines[29] == "|." + " " * 27 + "|"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_byte_value_gets_the_originals_character(dtype: type) -> None:
    # byte b scaled to b / 255 is drawn as SHADES[min(int(b / 255 * 10), 9)]; in integers that
    # is SHADES[min(10 * b // 255, 9)], which avoids any rounding in the expectation.
    values = np.arange(784) % 256
    pixels = (values.astype(dtype) / dtype(255)).astype(dtype)
    drawn = "".join(line[1:-1] for line in render_digit(pixels, "").split("\n")[2:30])
    assert drawn == "".join(SHADES[min(10 * b // 255, 9)] for b in values)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_thresholds(dtype: type) -> None:
    # Each threshold as the pixels' own precision holds it: float32 0.9 is 0.89999998 and float32
    # 0.7 is 0.69999999, which are '@' and '#' to whoever wrote 0.9 and 0.7.
    cases = {0.0: " ", 0.0999: " ", 0.1: ".", 0.2: ":", 0.3: "-", 0.4: "=", 0.5: "+", 0.6: "*",
             0.7: "#", 0.8: "%", 0.8999: "%", 0.9: "@", 1.0: "@"}
    if dtype is np.float16:
        del cases[0.0999], cases[0.8999]  # not distinct from 0.1 and 0.9 in 11 bits
    for value, char in cases.items():
        pixels = np.full(784, value, dtype=dtype)
        assert render_digit(pixels, "")[33] == char, value


def test_accepts_a_28x28_grid_too() -> None:
    grid = np.eye(28)
    assert render_digit(grid, "h") == render_digit(grid.reshape(-1), "h")


@pytest.mark.parametrize("size", [0, 783, 785])
def test_wrong_number_of_pixels(size: int) -> None:
    with pytest.raises(ConfigError, match=f"784 pixels \\(28x28\\), got {size}"):
        render_digit(np.zeros(size), "h")


def test_digit_str_uses_the_label_as_header() -> None:
    pixels = np.linspace(0, 1, 784)
    digit = Digit(pixels, 5, "5")
    assert str(digit) == render_digit(pixels, "label 5")
    assert Digit(pixels, 5).header == "label 5"


def test_digit_header_names_a_class_that_is_not_a_number() -> None:
    digit = Digit(np.zeros(784, dtype=np.float32), np.int64(9), "Ankle boot")
    assert digit.label == 9 and type(digit.label) is int
    assert str(digit).split("\n")[0] == "label 9 (Ankle boot)"


def test_digit_needs_784_pixels() -> None:
    with pytest.raises(ConfigError, match=r"784 pixels, got an array of shape \(28, 28\)"):
        Digit(np.zeros((28, 28)), 1)


def test_a_digit_s_repr_is_one_line_and_print_draws_it():
    digit = Digit(np.zeros(784, np.float32), 9, "Ankle boot")
    assert repr(digit) == "Digit(label=9, class_name='Ankle boot')"
    assert str(digit).startswith("label 9 (Ankle boot)\n")


def test_a_digit_s_label_is_a_whole_number_of_at_least_0():
    # "five" and None had raised int()'s errors, 5.7 became 5 and -1 was drawn as "label -1".
    for label in ("five", None, 5.7, -1, True):
        with pytest.raises(ConfigError) as refused:
            Digit(np.zeros(784, np.float32), label)
        assert str(refused.value) == f"a digit's label must be a whole number of at least 0, got {label!r}"


def test_a_digit_of_bytes_is_refused_with_how_to_scale_them():
    # Bytes had drawn as a solid block of "@".
    for pixels in (np.full(784, 200, np.uint8), [0] * 784):
        with pytest.raises(ConfigError) as refused:
            Digit(pixels, 1)
        dtype = np.asarray(pixels).dtype
        assert str(refused.value) == (f"a digit's pixels must be floating-point values, got {dtype} (image bytes: "
                                      f"pixels.astype(np.float32) / 255, as MNIST's are scaled; other numbers: "
                                      f"pixels.astype(np.float32))")
    assert str(Digit(np.full(784, 200, np.uint8).astype(np.float32) / 255, 1)).split("\n")[2] == "|" + "#" * 28 + "|"


def ring() -> np.ndarray:
    """A light, anti-aliased zero on black, as MNIST draws its digits: 784 bytes of many grey levels."""
    y, x = np.mgrid[:28, :28]
    radius = np.hypot(y - 14, x - 14)
    return np.rint(255 * np.exp(-((radius - 8) ** 2) / 6)).astype(np.uint8).reshape(-1)


def refusal(draw) -> str:
    with pytest.raises(ConfigError) as refused:
        draw()
    return str(refused.value)


def test_bytes_kept_as_floats_are_refused_with_how_to_scale_them_not_drawn_as_a_block():
    # float32 bytes 0..255 had drawn every pixel with any ink as "@": the digit's shading lost.
    float_bytes = ring().astype(np.float32)
    expected = ("a digit's pixels must lie in [0, 1] (0 black, 1 white), these run from 0 to 255; scale them into "
                "[0, 1] first (image bytes: pixels / 255, as MNIST's are scaled)")
    assert refusal(lambda: render_digit(float_bytes, "x")) == expected
    assert refusal(lambda: Digit(float_bytes, 0)) == expected
    assert refusal(lambda: Dataset(float_bytes[None], [0])[0]) == expected
    scaled = float_bytes / 255  # as advised: drawn in the original's shades, byte by byte
    drawn = "".join(line[1:-1] for line in str(Digit(scaled, 0)).split("\n")[2:30])
    assert drawn == "".join(SHADES[min(10 * b // 255, 9)] for b in ring().tolist())
    assert set(drawn) == set(SHADES)


@pytest.mark.parametrize("value,got", [(-0.5, "these run from -0.5 to 0.5"), (7.0, "these run from 0.5 to 7"),
                                       (1 + 1e-12, "these run from 0.5 to 1.000000000001"),  # not "1 to 1"
                                       (np.nan, "1 of them is NaN")])
def test_a_pixel_outside_0_1_is_refused_not_clamped(value: float, got: str) -> None:
    pixels = np.full(784, 0.5)
    pixels[300] = value
    assert refusal(lambda: render_digit(pixels, "x")) == (f"a digit's pixels must lie in [0, 1] (0 black, 1 white), "
                                                          f"{got}; scale them into [0, 1] first (image bytes: "
                                                          f"pixels / 255, as MNIST's are scaled)")


@pytest.mark.parametrize("pixels, kind", [(np.full(784, 0.5 + 0.9j), "complex128"), (np.full(784, "0.5"), "<U3")])
def test_pixels_that_are_not_real_numbers_are_refused_not_drawn(pixels, kind) -> None:
    assert refusal(lambda: render_digit(pixels, "x")) == f"a digit's pixels must be real numbers, got {kind} values"


@pytest.mark.parametrize("pixels", [ring() / np.float32(255), ring().astype(np.float32),
                                    ring() / np.float32(127.5) - 1, np.full(784, np.float32(1.0000001))])
def test_a_digit_is_drawn_from_exactly_the_arrays_predict_classifies(tmp_path, pixels) -> None:
    """The drawing shows what the network is given: predict takes such an .npy as it is, or refuses it."""
    np.save(tmp_path / "digit.npy", pixels)
    try:
        classified = read_images(tmp_path / "digit.npy")[1][0]
    except DataFormatError:
        classified = None
    try:
        drawn = render_digit(pixels, "x")
    except ConfigError:
        drawn = None
    assert (classified is None) == (drawn is None)
    if drawn is not None:
        assert drawn == render_digit(classified, "x")
