"""One 28x28 sample and its text picture, as the original Java ``DigitData`` drew it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distnet.checks import floating_point, real_numbers, whole_number
from distnet.errors import ConfigError

__all__ = ["Digit", "render_digit"]

SIDE = 28
PIXELS = SIDE * SIDE
SHADES = " .:-=+*#%@"


def render_digit(pixels: np.ndarray, header: str) -> str:
    """Draw 784 pixel values in [0, 1] as a 28x28 text picture.

    The result has 31 lines, joined by ``\\n`` with no newline at the end:

    - *header* (for example ``"label 5"`` or ``"label 5, predicted 3"``);
    - a line of 30 dashes;
    - 28 rows, each ``|`` + 28 characters + ``|``;
    - a line of 30 dashes.

    Pixel ``v`` is drawn as ``" .:-=+*#%@"[min(int(v * 10), 9)]``: a space below 0.1, ``.``
    from 0.1, and so on up to ``@`` from 0.9.

    Raises:
        ConfigError: *pixels* does not hold exactly 784 values, or they do not all lie in [0, 1].
    """
    values = real_numbers("a digit's pixels", np.asarray(pixels))
    if values.size != PIXELS:
        raise ConfigError(f"a digit has {PIXELS} pixels ({SIDE}x{SIDE}), got {values.size}")
    # In the pixels' own precision: float32 0.9 is 0.89999998, which widened to float64 and times
    # 10 falls below 9 ('%'), while float32 arithmetic rounds it to 9 ('@') as the user means.
    # Bytes scaled to [0, 1] in either precision draw as the original's doubles do.
    if not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float64)
    values = values.reshape(SIDE, SIDE)
    check_pixel_range(values)
    levels = np.minimum((values * values.dtype.type(10)).astype(np.int64), 9)
    dashes = "-" * (SIDE + 2)
    rows = ["|" + "".join(SHADES[level] for level in row) + "|" for row in levels.tolist()]
    return "\n".join([header, dashes, *rows, dashes])


def check_pixel_range(values: np.ndarray) -> None:
    """ConfigError unless every pixel value lies in [0, 1] (0 black, 1 white), as ``distnet
    predict`` also requires: bytes kept as floats (0..255) would draw as a solid block of "@",
    and no values outside it can be drawn as what a network given them sees."""
    inside = (values >= 0) & (values <= 1)  # False for NaN too
    if inside.all():
        return
    if np.isnan(values).any():
        nans = np.count_nonzero(np.isnan(values))
        got = f"{nans} of them {'is' if nans == 1 else 'are'} NaN"
    else:
        low, high = values.min(), values.max()
        # 1 + 1e-12 is outside, and must not read "1": the shortest digits that tell it apart.
        top = f"{high:g}" if low < 0 or f"{high:g}" != "1" else np.format_float_positional(high, trim="-")
        got = f"these run from {low:g} to {top}"
    raise ConfigError(f"a digit's pixels must lie in [0, 1] (0 black, 1 white), {got}; scale them into [0, 1] "
                      f"first (image bytes: pixels / 255, as MNIST's are scaled)")


@dataclass(frozen=True, eq=False)
class Digit:
    """One sample: 784 pixel values in [0, 1], its label, and the label's class name if any.

    ``str(digit)`` draws it with :func:`render_digit` under the header ``"label 5"``, or
    ``"label 9 (Ankle boot)"`` when the class name is more than the label's number.
    """

    pixels: np.ndarray
    label: int
    class_name: str | None = None

    def __post_init__(self) -> None:
        pixels = np.asarray(self.pixels)
        if pixels.shape != (PIXELS,):
            raise ConfigError(f"a digit has {PIXELS} pixels, got an array of shape {pixels.shape}")
        # Bytes would draw as a solid block of "@", which says nothing of what went wrong; so
        # would bytes kept as floats, refused here too, where they enter rather than when drawn.
        floating_point("a digit's pixels", pixels, "pixels")
        check_pixel_range(pixels)
        object.__setattr__(self, "pixels", pixels)
        object.__setattr__(self, "label", whole_number("a digit's label", self.label, 0))

    @property
    def header(self) -> str:
        """The first line of the text picture: the label, and the class name if it adds to it."""
        if self.class_name is None or self.class_name == str(self.label):
            return f"label {self.label}"
        return f"label {self.label} ({self.class_name})"

    def __str__(self) -> str:
        return render_digit(self.pixels, self.header)

    def __repr__(self) -> str:  # print(digit) draws it; the repr stays one line
        return f"Digit(label={self.label}, class_name={self.class_name!r})"
