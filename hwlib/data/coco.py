"""Q4's data: the cs231n COCO captioning files, or the embedded shapes captioning set.

``python -m hwlib.data fetch coco`` downloads cs231n's ``coco_captioning.zip`` (about 1 GB) and
unpacks it to ``<data root>/coco_captioning``:

=============================== ===============================================================
file                            content
=============================== ===============================================================
coco2014_captions.h5            ``train_captions`` (N, 17) int, ``train_image_idxs`` (N,) int,
                                ``val_captions``, ``val_image_idxs``
train2014_vgg16_fc7_pca.h5      ``features`` (82783, 512) float: VGG-16 fc7, PCA-reduced
val2014_vgg16_fc7_pca.h5        ``features`` (40504, 512) float
train2014_vgg16_fc7.h5          ``features`` (82783, 4096) float (``pca_features=False``)
val2014_vgg16_fc7.h5            ``features`` (40504, 4096) float (``pca_features=False``)
coco2014_vocab.json             ``{"idx_to_word": [...], "word_to_idx": {...}}``, <NULL> = 0
train2014_urls.txt              one Flickr URL per training image
val2014_urls.txt                one Flickr URL per validation image
=============================== ===============================================================

**What is verified.** The archive's SHA-256 could not be obtained where this kit was written
(no network), so :data:`COCO_ZIP_SHA256` is ``None``: UNVERIFIED (TODO: set it once someone has
downloaded the official zip, and ``fetch`` will check the archive too). Instead, the loader
validates the schema of the files it reads (:func:`verify_coco_folder`): the expected HDF5 keys,
integer captions and indices, float features, consistent sizes (one index per caption, one URL
per image, the same feature size in both splits), indices within range, and a vocabulary whose
``word_to_idx`` and ``idx_to_word`` agree, with ``<NULL>`` = 0, ``<START>`` and ``<END>``.
A file that breaks the schema raises :class:`DataError` naming the file and the problem.

**Offline default.** When the COCO files are absent, :func:`load_coco_data` (with no
``base_dir``) returns the embedded shapes captioning set of :mod:`hwlib.data.shapes_captions`
in the same format, and prints one line saying so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..paths import data_root as _data_root
from .download import DataError, Dataset, fetch_zip_folder, register
from .shapes_captions import load_shapes_captions

__all__ = ["COCO_URL", "COCO_ZIP_SHA256", "COCO_FILES", "COCO_SOURCE", "COCO", "coco_folder", "verify_coco_folder",
           "load_coco_data", "sample_coco_minibatch"]

COCO_URL = "http://cs231n.stanford.edu/coco_captioning.zip"
# UNVERIFIED-TODO: the SHA-256 of coco_captioning.zip is not known here (it could not be downloaded
# when this kit was written). Set it to the zip's hex digest to have `fetch` verify the archive; until
# then the unpacked files are checked against their schema only (verify_coco_folder).
COCO_ZIP_SHA256: str | None = None
COCO_FOLDER = "coco_captioning"
CAPTIONS_FILE = "coco2014_captions.h5"
VOCAB_FILE = "coco2014_vocab.json"
FEATURE_FILES = {  # pca_features -> split -> file name
    True: {"train": "train2014_vgg16_fc7_pca.h5", "val": "val2014_vgg16_fc7_pca.h5"},
    False: {"train": "train2014_vgg16_fc7.h5", "val": "val2014_vgg16_fc7.h5"},
}
URL_FILES = {"train": "train2014_urls.txt", "val": "val2014_urls.txt"}
# The files the default loader needs (the 4096-d fc7 files are read only with pca_features=False).
COCO_FILES = (CAPTIONS_FILE, *FEATURE_FILES[True].values(), VOCAB_FILE, *URL_FILES.values())
CAPTION_KEYS = ("train_captions", "train_image_idxs", "val_captions", "val_image_idxs")
COCO_SOURCE = "COCO 2014 captions (cs231n files, VGG-16 fc7 {kind} features)"
_FETCH_HINT = "run `python -m hwlib.data fetch coco` (online, about 1 GB), or unzip {url} into {root}"


def coco_folder(root=None) -> Path:
    """``<data root>/coco_captioning``."""
    return _data_root(root) / COCO_FOLDER


# --- reading and validating ----------------------------------------------------------------------

def _bad(path: Path, problem: str) -> DataError:
    return DataError(f"{path} does not have the COCO captioning schema: {problem}. "
                     f"Delete the folder and " + _FETCH_HINT.format(url=COCO_URL, root=path.parent.parent))


def _read_h5(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    import h5py

    if not path.is_file():
        raise DataError(f"{path} is missing; " + _FETCH_HINT.format(url=COCO_URL, root=path.parent.parent))
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in keys if k not in f]
            if missing:
                raise _bad(path, f"missing dataset(s) {', '.join(missing)} (it has {', '.join(sorted(f.keys())) or 'none'})")
            return {k: np.asarray(f[k]) for k in keys}
    except OSError as exc:  # not an HDF5 file, truncated
        raise DataError(f"{path} is corrupt or truncated ({exc}); delete it and "
                        + _FETCH_HINT.format(url=COCO_URL, root=path.parent.parent)) from None


def _read_vocab(path: Path) -> tuple[list[str], dict[str, int]]:
    if not path.is_file():
        raise DataError(f"{path} is missing; " + _FETCH_HINT.format(url=COCO_URL, root=path.parent.parent))
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); delete it and "
                        + _FETCH_HINT.format(url=COCO_URL, root=path.parent.parent)) from None
    if not isinstance(vocab, dict) or not isinstance(vocab.get("idx_to_word"), list) \
            or not isinstance(vocab.get("word_to_idx"), dict):
        raise _bad(path, "expected a JSON object with a list idx_to_word and an object word_to_idx")
    idx_to_word, word_to_idx = vocab["idx_to_word"], vocab["word_to_idx"]
    if not all(isinstance(w, str) for w in idx_to_word) or len(set(idx_to_word)) != len(idx_to_word):
        raise _bad(path, "idx_to_word must be a list of distinct words")
    if word_to_idx != {w: i for i, w in enumerate(idx_to_word)}:
        raise _bad(path, "word_to_idx and idx_to_word disagree (word_to_idx[idx_to_word[i]] must be i for every i)")
    if not idx_to_word or idx_to_word[0] != "<NULL>":
        raise _bad(path, f"word 0 must be <NULL>; got {idx_to_word[0] if idx_to_word else 'an empty vocabulary'!r}")
    missing = [t for t in ("<START>", "<END>") if t not in word_to_idx]
    if missing:
        raise _bad(path, f"the vocabulary lacks {', '.join(missing)}")
    return idx_to_word, word_to_idx


def _read_urls(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path} is missing; " + _FETCH_HINT.format(url=COCO_URL, root=path.parent.parent))
    with open(path, encoding="utf-8") as fh:
        return np.asarray([line.strip() for line in fh if line.strip()])


def _read_folder(folder: Path, pca_features: bool) -> dict:
    """Read every file of the folder and check the schema; return the seed's dict (all captions)."""
    folder = Path(folder)
    captions_path = folder / CAPTIONS_FILE
    data = _read_h5(captions_path, CAPTION_KEYS)
    idx_to_word, word_to_idx = _read_vocab(folder / VOCAB_FILE)
    V = len(idx_to_word)
    lengths = set()
    for split in ("train", "val"):
        captions, idxs = data[f"{split}_captions"], data[f"{split}_image_idxs"]
        if captions.ndim != 2 or not np.issubdtype(captions.dtype, np.integer) or captions.shape[1] < 2:
            raise _bad(captions_path, f"{split}_captions must be a 2-D integer array (N, T) with T >= 2; "
                                      f"got shape {captions.shape}, dtype {captions.dtype}")
        if idxs.shape != (captions.shape[0],) or not np.issubdtype(idxs.dtype, np.integer):
            raise _bad(captions_path, f"{split}_image_idxs must be integers of shape ({captions.shape[0]},) "
                                      f"(one per caption); got shape {idxs.shape}, dtype {idxs.dtype}")
        if captions.size and (captions.min() < 0 or captions.max() >= V):
            raise _bad(captions_path, f"{split}_captions holds word ids outside [0, {V}) (the vocabulary of "
                                      f"{VOCAB_FILE}): min {captions.min()}, max {captions.max()}")
        lengths.add(captions.shape[1])
        feature_path = folder / FEATURE_FILES[bool(pca_features)][split]
        features = _read_h5(feature_path, ("features",))["features"]
        if features.ndim != 2 or not np.issubdtype(features.dtype, np.floating):
            raise _bad(feature_path, f"features must be a 2-D float array (num_images, D); "
                                     f"got shape {features.shape}, dtype {features.dtype}")
        if idxs.size and (idxs.min() < 0 or idxs.max() >= features.shape[0]):
            raise _bad(captions_path, f"{split}_image_idxs must index the {features.shape[0]} images of "
                                      f"{feature_path.name}: got min {idxs.min()}, max {idxs.max()}")
        url_path = folder / URL_FILES[split]
        urls = _read_urls(url_path)
        if urls.shape[0] != features.shape[0]:
            raise _bad(url_path, f"expected one URL per image of {feature_path.name} ({features.shape[0]}); "
                                 f"got {urls.shape[0]} lines")
        data[f"{split}_features"], data[f"{split}_urls"] = features, urls
    if len(lengths) != 1:
        raise _bad(captions_path, f"train_captions and val_captions must have the same length T; got {sorted(lengths)}")
    if data["train_features"].shape[1] != data["val_features"].shape[1]:
        raise _bad(folder, f"train and val features differ in size: {data['train_features'].shape[1]} and "
                           f"{data['val_features'].shape[1]}")
    data["idx_to_word"], data["word_to_idx"] = idx_to_word, word_to_idx
    data["source"] = COCO_SOURCE.format(kind="PCA-512" if pca_features else "4096-d")
    return data


def verify_coco_folder(folder, pca_features: bool = True) -> None:
    """Raise :class:`DataError` unless ``folder`` holds the COCO captioning files with the expected schema."""
    _read_folder(Path(folder), pca_features)


# --- the seed's API ----------------------------------------------------------------------------

def load_coco_data(base_dir=None, max_train=None, pca_features=True, *, data_root=None, seed: int = 0,
                   verbose: bool = True) -> dict:
    """Load the captioning data as a dict (the seed's format).

    Inputs:
    - base_dir: folder with the COCO files; None: ``<data root>/coco_captioning``, and the
      embedded shapes set when that folder has no ``coco2014_captions.h5``
    - max_train: keep only this many training captions, drawn without replacement (None: all)
    - pca_features: the 512-d PCA features (True) or the 4096-d fc7 features (COCO only)
    - data_root: the data root (see :func:`hwlib.paths.data_root`)
    - seed: seed of the ``max_train`` draw, and of the embedded set
    - verbose: print one line saying which data is used

    Returns a dict with
    - ``train_captions`` (N, T) int32 word ids, ``train_image_idxs`` (N,) the image of each caption,
      ``train_features`` (num_images, D) float32, ``train_urls`` (num_images,) str, and the same
      for ``val_``;
    - ``idx_to_word`` (list) and ``word_to_idx`` (dict), with ``<NULL>`` = 0, ``<START>``, ``<END>``;
    - ``source``: which data this is; for the embedded set also ``train_images``/``val_images``
      (num_images, 48, 48, 3) uint8 (its ``urls`` are names like ``shapes:train/17``).
    """
    if base_dir is None:
        folder = coco_folder(data_root)
        if not (folder / CAPTIONS_FILE).is_file():
            data = load_shapes_captions(data_root, seed, verbose=False)
            if verbose:
                print(f"Data: captioning, {data['source']} ({len(data['train_captions'])} train / "
                      f"{len(data['val_captions'])} val captions) -- the COCO files are not in {folder}; "
                      f"for COCO {_FETCH_HINT.format(url=COCO_URL, root=folder.parent)}.")
            return _subsample(data, max_train, seed)
    else:
        folder = Path(base_dir)
    data = _read_folder(folder, pca_features)
    if verbose:
        print(f"Data: captioning, {data['source']} from {folder} ({len(data['train_captions'])} train / "
              f"{len(data['val_captions'])} val captions).")
    return _subsample(data, max_train, seed)


def _subsample(data: dict, max_train, seed) -> dict:
    if max_train is None:
        return data
    if isinstance(max_train, bool) or not isinstance(max_train, (int, np.integer)) or max_train < 1:
        raise ValueError(f"load_coco_data: max_train must be a positive integer or None; got {max_train!r}")
    num_train = data["train_captions"].shape[0]
    if max_train >= num_train:
        return data
    keep = np.random.default_rng(seed).choice(num_train, size=int(max_train), replace=False)
    data = dict(data)
    data["train_captions"] = data["train_captions"][keep]
    data["train_image_idxs"] = data["train_image_idxs"][keep]
    return data


def sample_coco_minibatch(data, batch_size=100, split="train", rng=None):
    """Draw ``batch_size`` captions of a split uniformly with replacement, with their images' features and URLs.

    Inputs: ``data`` from :func:`load_coco_data`; ``split`` "train" or "val"; ``rng`` a
    ``np.random.Generator`` or an int seed (None: a fresh, unseeded generator).

    Returns ``(captions, features, urls)``: (B, T) int, (B, D) float, (B,) str.
    """
    if split not in ("train", "val"):
        raise ValueError(f"sample_coco_minibatch: split must be 'train' or 'val'; got {split!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"sample_coco_minibatch: batch_size must be a positive integer; got {batch_size!r}")
    if rng is not None and not isinstance(rng, (np.random.Generator, int, np.integer)):
        raise ValueError(f"sample_coco_minibatch: rng must be a np.random.Generator, an int seed or None; got {rng!r}")
    rng = np.random.default_rng(rng)
    split_size = data[f"{split}_captions"].shape[0]
    pick = rng.integers(0, split_size, size=int(batch_size))
    captions = data[f"{split}_captions"][pick]
    image_idxs = data[f"{split}_image_idxs"][pick]
    return captions, data[f"{split}_features"][image_idxs], data[f"{split}_urls"][image_idxs]


# --- download ----------------------------------------------------------------------------------

def _fetch_coco(folder: Path) -> None:
    """Download the zip, check its checksum where known, unpack it, check the schema."""
    fetch_zip_folder(COCO_URL, folder, COCO_ZIP_SHA256, verify_coco_folder,
                     invalid="does not hold valid COCO captioning files")


@dataclass(frozen=True)
class _CocoDataset(Dataset):
    """COCO is present when its folder holds every file (``fetch`` and the loader check the schema)."""

    def present(self, root=None) -> bool:
        return all((self.path(root) / name).is_file() for name in COCO_FILES)


COCO = register(_CocoDataset(
    name="coco", folder=COCO_FOLDER,
    description="COCO 2014 captions with VGG-16 features (cs231n's coco_captioning.zip, ~1 GB; Q4)",
    after_fetch=_fetch_coco,
))
