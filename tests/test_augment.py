"""hwlib.augment.random_shifts: every sampled image is its source moved by at most max_shift pixels,
the uncovered border filled with the background, labels carried along; bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest

from hwlib.augment import random_shifts


def _shifted(image: np.ndarray, dy: int, dx: int, fill: float) -> np.ndarray:
    """``image`` (C, H, W) moved down by dy and right by dx (negative: up, left), by explicit loops."""
    C, H, W = image.shape
    out = np.full_like(image, fill)
    for c in range(C):
        for i in range(H):
            for j in range(W):
                if 0 <= i - dy < H and 0 <= j - dx < W:
                    out[c, i, j] = image[c, i - dy, j - dx]
    return out


def test_every_sample_is_a_shifted_source_image():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 2, 5, 7)).astype(np.float32)
    y = np.arange(6) % 3
    sample = random_shifts(X, y, max_shift=2)
    Xb, yb = sample(np.random.default_rng(1), 40)
    assert Xb.shape == (40, 2, 5, 7) and Xb.dtype == np.float32 and yb.shape == (40,)
    fill = X.min()
    seen = set()
    for image, label in zip(Xb, yb):
        matches = [(n, dy, dx) for n in range(6) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(image, _shifted(X[n], dy, dx, fill))]
        assert matches, "a sampled image is no shift of any source image"
        assert any(y[n] == label for n, _, _ in matches), "the label does not follow its image"
        seen.update((dy, dx) for _, dy, dx in matches)
    assert len(seen) > 5, "the shifts should vary from image to image"


def test_zero_shift_gives_the_images_and_the_rng_decides():
    X = np.arange(3 * 1 * 4 * 4, dtype=np.float64).reshape(3, 1, 4, 4)
    y = np.array([0, 1, 2])
    Xb, yb = random_shifts(X, y, max_shift=0)(np.random.default_rng(5), 8)
    assert np.array_equal(Xb, X[yb])
    again = random_shifts(X, y, max_shift=1)
    a, b = again(np.random.default_rng(7), 5), again(np.random.default_rng(7), 5)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("X, y, shift, expected", [
    (np.zeros((3, 4, 4)), np.zeros(3, dtype=int), 1, "shape (N, C, H, W)"),
    (np.zeros((3, 1, 4, 4)), np.zeros(2, dtype=int), 1, "one label per image"),
    (np.zeros((3, 1, 4, 4)), np.zeros(3), 1, "integer labels"),
    (np.zeros((3, 1, 4, 4)), np.zeros(3, dtype=int), -1, "max_shift must be an int >= 0"),
])
def test_bad_input_is_refused_with_a_clear_message(X, y, shift, expected):
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        random_shifts(X, y, max_shift=shift)
