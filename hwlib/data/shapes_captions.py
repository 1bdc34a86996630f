"""The embedded captioning set: rendered scenes of coloured shapes, described by a little grammar.

Used by :func:`hwlib.data.coco.load_coco_data` when the COCO captioning files are absent (always,
offline). It has the same dict format as COCO (``train_captions``, ``train_image_idxs``,
``train_features``, ``val_*``, ``word_to_idx``, ``idx_to_word``, ``train_urls``, ``val_urls``)
plus the pictures themselves (``train_images``, ``val_images``) so samples can be shown with them.

**Scenes.** A 48x48 RGB image is a 3x3 grid of 16x16 cells on a dark background with a little
pixel noise. It holds one shape, or two shapes in the same row or the same column. A shape is a
circle, a square or a triangle (fixed size, so the three differ in area), in one of five
colours, placed in a cell with a small random offset; the two shapes of a scene differ in
colour or shape.

**Captions** come from this grammar (every two-shape scene gets both of its descriptions)::

    caption  := object | object relation object
    object   := "a" colour shape
    colour   := "red" | "green" | "blue" | "yellow" | "purple"
    shape    := "circle" | "square" | "triangle"
    relation := "above" | "below" | "to the left of" | "to the right of"

e.g. ``<START> a red circle to the left of a blue square <END>`` and ``<START> a blue square to
the right of a red circle <END>``, padded with ``<NULL>`` to 12 tokens.

**Features** stand in for the CNN features of COCO: the image average-pooled over 4x4 pixel
blocks (a 12x12 grid of mean colours, 432 numbers), centred with the training mean and scaled by
the training standard deviation. Pooling keeps what a caption needs (the colour and the amount
of it in each part of the picture: colour, shape through its area, and position), and a
linear layer of the model can read it.

The set is a deterministic function of the seed (NumPy's PCG64 stream), built in about a second
and cached in ``<data root>/shapes_captions/seed<seed>.npz``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..paths import data_root as _data_root

__all__ = ["COLORS", "SHAPES", "IMAGE_SIZE", "CAPTION_LENGTH", "VOCABULARY", "SOURCE", "make_shapes_captions",
           "load_shapes_captions", "render_scenes", "scene_captions", "pool_features"]

GENERATOR_VERSION = 1           # bump when the generator changes: old caches are rebuilt
COLORS = {"red": (220, 50, 50), "green": (60, 180, 75), "blue": (60, 100, 235),
          "yellow": (235, 210, 50), "purple": (160, 70, 210)}
SHAPES = ("circle", "square", "triangle")
IMAGE_SIZE = 48                 # pixels per side
GRID = 3                        # cells per side
CELL = IMAGE_SIZE // GRID       # 16 pixels
HALF_SIZE = 5.5                 # a shape spans 11 pixels
JITTER = 2                      # largest offset of a shape from its cell centre, in pixels
POOL = 4                        # feature pooling block, in pixels
BACKGROUND = (25, 25, 35)
NOISE = 6                       # pixel noise: uniform integers in [-NOISE, NOISE]
CAPTION_LENGTH = 12             # <START> + at most 10 words + <END>
SPECIAL = ("<NULL>", "<START>", "<END>", "<UNK>")
WORDS = ("a", *COLORS, *SHAPES, "above", "below", "to", "the", "left", "right", "of")
VOCABULARY = SPECIAL + WORDS
SOURCE = "embedded shapes captioning set (generated, seed {seed})"


# --- scenes -----------------------------------------------------------------------------------------

def _draw_scenes(rng: np.random.Generator, num_images: int, p_single: float = 0.25):
    """Random scene layouts: per image 1 or 2 objects (colour id, shape id, row, column).

    Returns ``objects`` (num_images, 2, 4) int (the second object is -1 for a single shape) and
    ``offsets`` (num_images, 2, 2) int pixel offsets from the cell centres.
    """
    num_kinds = len(COLORS) * len(SHAPES)
    single = rng.random(num_images) < p_single
    # Two different kinds (colour, shape): the second is drawn among the others.
    kind_a = rng.integers(0, num_kinds, num_images)
    kind_b = (kind_a + rng.integers(1, num_kinds, num_images)) % num_kinds
    vertical = rng.random(num_images) < 0.5
    line = rng.integers(0, GRID, num_images)                     # the shared row (or column)
    pairs = np.array([(i, j) for i in range(GRID) for j in range(i + 1, GRID)])
    first, second = pairs[rng.integers(0, len(pairs), num_images)].T   # two positions along the line
    cell_single = rng.integers(0, GRID * GRID, num_images)
    offsets = rng.integers(-JITTER, JITTER + 1, (num_images, 2, 2))

    objects = np.full((num_images, 2, 4), -1, dtype=np.int64)
    objects[:, 0, 0], objects[:, 0, 1] = kind_a // len(SHAPES), kind_a % len(SHAPES)
    objects[:, 1, 0], objects[:, 1, 1] = kind_b // len(SHAPES), kind_b % len(SHAPES)
    # Object 0 comes first along the line: left of / above object 1.
    objects[:, 0, 2] = np.where(vertical, first, line)
    objects[:, 0, 3] = np.where(vertical, line, first)
    objects[:, 1, 2] = np.where(vertical, second, line)
    objects[:, 1, 3] = np.where(vertical, line, second)
    objects[single, 0, 2], objects[single, 0, 3] = cell_single[single] // GRID, cell_single[single] % GRID
    objects[single, 1] = -1
    return objects, offsets


def render_scenes(objects: np.ndarray, offsets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render scenes (see :func:`_draw_scenes`) to uint8 images (N, IMAGE_SIZE, IMAGE_SIZE, 3)."""
    N = objects.shape[0]
    image, slot = np.nonzero(objects[:, :, 0] >= 0)               # one entry per object present
    colour, shape, row, col = objects[image, slot].T
    # A shape never leaves its cell, so it is drawn on the cell's 16x16 patch only.
    centre = np.arange(CELL) + 0.5                                  # pixel centres within a cell
    dy = centre[None, :, None] - (CELL / 2 + offsets[image, slot, 0])[:, None, None]   # (n, CELL, 1)
    dx = centre[None, None, :] - (CELL / 2 + offsets[image, slot, 1])[:, None, None]   # (n, 1, CELL)
    r = HALF_SIZE
    inside = np.where(shape[:, None, None] == 0, dx ** 2 + dy ** 2 <= r ** 2,            # circle
                      np.where(shape[:, None, None] == 1, (np.abs(dx) <= r) & (np.abs(dy) <= r),   # square
                               (np.abs(dy) <= r) & (np.abs(dx) <= (dy + r) / 2)))       # triangle, apex up
    obj, i, j = np.nonzero(inside)
    images = np.empty((N, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.int16)
    images[:] = BACKGROUND
    images[image[obj], row[obj] * CELL + i, col[obj] * CELL + j] = np.array(list(COLORS.values()))[colour[obj]]
    # Uniform pixel noise in [-NOISE, NOISE] from raw random bytes (much cheaper than Gaussian draws).
    noise = np.frombuffer(rng.bytes(images.size), dtype=np.uint8).reshape(images.shape) % (2 * NOISE + 1)
    images += noise.astype(np.int16) - NOISE
    return np.clip(images, 0, 255).astype(np.uint8)


def scene_captions(objects: np.ndarray) -> list[list[list[str]]]:
    """The reference captions (lists of words) of every scene: one for a single shape, two for a pair."""
    colours, shapes = list(COLORS), SHAPES
    result = []
    for (a, b) in objects:
        obj_a = ["a", colours[a[0]], shapes[a[1]]]
        if b[0] < 0:
            result.append([obj_a])
            continue
        obj_b = ["a", colours[b[0]], shapes[b[1]]]
        if a[3] == b[3]:   # same column: a is above b
            result.append([obj_a + ["above"] + obj_b, obj_b + ["below"] + obj_a])
        else:              # same row: a is left of b
            result.append([obj_a + ["to", "the", "left", "of"] + obj_b, obj_b + ["to", "the", "right", "of"] + obj_a])
    return result


def pool_features(images: np.ndarray) -> np.ndarray:
    """Average-pool uint8 images (N, S, S, 3) over POOL x POOL blocks: (N, (S/POOL)^2 * 3) floats in [0, 1]."""
    N, S = images.shape[0], images.shape[1]
    g = S // POOL
    # Sum the POOL rows of each block, then the POOL columns (two cheap reductions over contiguous axes).
    rows = images.reshape(N * g, POOL, S * 3).sum(axis=1, dtype=np.float32)        # (N g, S * 3)
    pooled = rows.reshape(N * g, g, POOL, 3).sum(axis=2) / (POOL * POOL * 255.0)   # (N g, g, 3)
    return pooled.reshape(N, -1)


def _encode(captions: list[list[list[str]]], word_to_idx: dict) -> tuple[np.ndarray, np.ndarray]:
    rows, image_idxs = [], []
    for i, refs in enumerate(captions):
        for words in refs:
            ids = [word_to_idx["<START>"], *(word_to_idx[w] for w in words), word_to_idx["<END>"]]
            rows.append(ids + [word_to_idx["<NULL>"]] * (CAPTION_LENGTH - len(ids)))
            image_idxs.append(i)
    return np.array(rows, dtype=np.int32), np.array(image_idxs, dtype=np.int32)


def make_shapes_captions(seed: int = 0, num_train: int = 4000, num_val: int = 500) -> dict:
    """Generate the set (no caching): a dict in the COCO format plus ``train_images``/``val_images``.

    ``num_train``/``num_val`` count images; a two-shape image has two captions.
    """
    rng = np.random.default_rng(seed)
    word_to_idx = {w: i for i, w in enumerate(VOCABULARY)}
    data = {}
    for split, n in (("train", num_train), ("val", num_val)):
        objects, offsets = _draw_scenes(rng, n)
        images = render_scenes(objects, offsets, rng)
        data[f"{split}_captions"], data[f"{split}_image_idxs"] = _encode(scene_captions(objects), word_to_idx)
        data[f"{split}_images"] = images
        data[f"{split}_urls"] = np.array([f"shapes:{split}/{i}" for i in range(n)])
    train, val = pool_features(data["train_images"]), pool_features(data["val_images"])
    mean, std = train.mean(axis=0), train.std()
    data["train_features"] = ((train - mean) / std).astype(np.float32)
    data["val_features"] = ((val - mean) / std).astype(np.float32)
    data["word_to_idx"] = word_to_idx
    data["idx_to_word"] = list(VOCABULARY)
    return data


# Per-process memo: (cache path, seed, generator version) -> the set, arrays read-only. A notebook that
# loads the set twice (all captions, then 50 of them) builds it once even where the root is read-only.
_MEMO: dict[tuple, dict] = {}


def _cache_path(root, seed: int) -> Path:
    return _data_root(root) / "shapes_captions" / f"seed{seed}.npz"


def _read_cache(path: Path, seed: int) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            if meta.get("version") != GENERATOR_VERSION or meta.get("seed") != seed:
                return None
            data = {k: f[k] for k in f.files if k != "meta"}
    except (OSError, ValueError, KeyError):   # missing, truncated or foreign file: rebuild it
        return None
    data["idx_to_word"] = meta["idx_to_word"]
    data["word_to_idx"] = {w: i for i, w in enumerate(meta["idx_to_word"])}
    return data


def _write_cache(path: Path, data: dict, seed: int) -> bool:
    """Write atomically (a concurrent reader never sees half a file); False where the root is read-only."""
    arrays = {k: v for k, v in data.items() if isinstance(v, np.ndarray)}
    meta = json.dumps({"version": GENERATOR_VERSION, "seed": seed, "idx_to_word": data["idx_to_word"]})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(fh, meta=np.array(meta), **arrays)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        return False
    return True


def load_shapes_captions(data_root=None, seed: int = 0, *, verbose: bool = True) -> dict:
    """The embedded captioning set for ``seed``: from the cache in the data root, or generated (and cached).

    Returns the dict of :func:`make_shapes_captions` with ``source`` (a short description) added;
    its arrays are read-only (they are shared by later loads in the same process: copy one to
    change it). A read-only data root is fine: the set is then generated once per process.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"load_shapes_captions: seed must be a non-negative integer; got {seed!r}")
    seed = int(seed)
    path = _cache_path(data_root, seed)
    key = (str(path), seed, GENERATOR_VERSION)
    if key in _MEMO:
        data, how = dict(_MEMO[key]), "already loaded in this process"
    else:
        data = _read_cache(path, seed)
        how = f"cached in {path}"
        if data is None:
            data = make_shapes_captions(seed)
            how = f"generated, cached in {path}" if _write_cache(path, data, seed) else "generated (data root not writable)"
        for value in data.values():
            if isinstance(value, np.ndarray):
                value.flags.writeable = False  # shared by every later load in this process
        _MEMO[key] = dict(data)
    data["word_to_idx"], data["idx_to_word"] = dict(data["word_to_idx"]), list(data["idx_to_word"])
    data["source"] = SOURCE.format(seed=seed)
    if verbose:
        print(f"Data: captioning, {data['source']}: {len(data['train_images'])} train / {len(data['val_images'])} val "
              f"images, {len(data['train_captions'])} / {len(data['val_captions'])} captions ({how}).")
    return data
