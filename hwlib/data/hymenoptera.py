"""Q5's downloads: the hymenoptera images (ants vs bees) and the ResNet-18 ImageNet weights.

``python -m hwlib.data fetch hymenoptera`` downloads the official zip of the PyTorch transfer-learning
tutorial and unpacks it to ``<data root>/hymenoptera_data/{train,val}/{ants,bees}``;
``python -m hwlib.data fetch resnet18`` downloads torchvision's ImageNet weights of ResNet-18 to
``<data root>/weights/resnet18-f37072fd.pth`` (the name torchvision uses; the same file in torch's
hub cache is used as well).

What is verified, and how:

* The zip: no checksum of it is published, so none is claimed (:data:`HYMENOPTERA_ZIP_SHA256` is
  ``None``, i.e. *unverified*). The unpacked tree is verified instead: the four class folders and
  their file counts (:data:`HYMENOPTERA_FILE_COUNTS`), and every image must open with PIL.
* The weights: torchvision's convention, the file name carries the first hex digits of the file's
  SHA-256 (``resnet18-<prefix>.pth``); :func:`verify_weights` checks them, as ``torch.hub`` does.

The official zip carries one file that is no photo: ``train/ants/imageNotFound.gif``, a 300x300 "we're
sorry, this image could not be found" placeholder. :func:`load_hymenoptera` skips it, as torchvision's
``ImageFolder`` does by default (``.gif`` is not among its image extensions), so the training set has
123 ants and 121 bees, the images the tutorial's figures were obtained with.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..paths import data_root
from .download import DataError, Dataset, download, fetch_zip_folder, register, sha256_payload

__all__ = [
    "HYMENOPTERA_URL", "HYMENOPTERA_ZIP_SHA256", "HYMENOPTERA_FILE_COUNTS", "PLACEHOLDER_FILES",
    "RESNET18_WEIGHTS_FILE", "WEIGHTS_BASE_URL", "RESNET18_WEIGHTS_URL", "hymenoptera_folder", "verify_tree",
    "load_hymenoptera", "weights_path", "verify_weights", "HYMENOPTERA", "RESNET18",
]

HYMENOPTERA_URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"
# UNVERIFIED: no checksum of the zip is published anywhere we could check, so none is claimed. Set it
# to the zip's SHA-256 to have `fetch` verify the archive too; the unpacked tree is verified either way.
HYMENOPTERA_ZIP_SHA256: str | None = None
# Files per class folder in the official zip (train/ants includes imageNotFound.gif).
HYMENOPTERA_FILE_COUNTS = {"train/ants": 124, "train/bees": 121, "val/ants": 70, "val/bees": 83}
# Files of the official zip that are not photos of their class: skipped by the loader.
PLACEHOLDER_FILES = frozenset({"imageNotFound.gif"})

# torchvision's file name for ResNet18_Weights.IMAGENET1K_V1; "f37072fd" is the published prefix of its
# SHA-256 (torch.hub checks downloads against it). Looked up at call time, so tests can point it elsewhere.
RESNET18_WEIGHTS_FILE = "resnet18-f37072fd.pth"
WEIGHTS_BASE_URL = "https://download.pytorch.org/models/"     # where torchvision downloads its weights from
RESNET18_WEIGHTS_URL = WEIGHTS_BASE_URL + RESNET18_WEIGHTS_FILE
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")   # torch.hub's HASH_REGEX, at least 6 hex digits

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
_FETCH_HINT = "run `python -m hwlib.data fetch hymenoptera` (online), or unzip {url} into {root}"


def hymenoptera_folder(root=None) -> Path:
    """``<data root>/hymenoptera_data``."""
    return data_root(root) / "hymenoptera_data"


def verify_tree(folder: Path) -> None:
    """Raise :class:`DataError` unless ``folder`` holds the four class folders with the official counts."""
    folder = Path(folder)
    hint = _FETCH_HINT.format(url=HYMENOPTERA_URL, root=folder.parent)
    if not folder.is_dir():
        raise DataError(f"hymenoptera data not found: {folder} does not exist; {hint}")
    problems = []
    for sub, expected in HYMENOPTERA_FILE_COUNTS.items():
        path = folder / sub
        if not path.is_dir():
            problems.append(f"{sub}/ is missing")
            continue
        count = sum(1 for p in path.iterdir() if p.is_file())
        if count != expected:
            problems.append(f"{sub}/ has {count} files, expected {expected}")
    if problems:
        raise DataError(
            f"hymenoptera data in {folder} is incomplete or not the official set ({'; '.join(problems)}); "
            f"delete the folder and {hint}"
        )


class _ImageCheck:
    """``is_valid_file`` for ImageFolder: real images only; remembers files that fail to open."""

    def __init__(self):
        self.unreadable: list[tuple[str, str]] = []

    def __call__(self, path: str) -> bool:
        name = Path(path).name
        if name in PLACEHOLDER_FILES or not name.lower().endswith(_IMAGE_EXTENSIONS):
            return False
        from PIL import Image

        try:
            with Image.open(path) as img:
                img.verify()   # reads the structure without decoding all pixels: cheap
        except Exception as exc:  # PIL raises many kinds (UnidentifiedImageError, OSError, SyntaxError)
            self.unreadable.append((path, f"{type(exc).__name__}: {exc}"))
            return False
        return True


def load_hymenoptera(root=None, transforms: dict | None = None, *, check: bool = True) -> dict:
    """The hymenoptera splits as torchvision ``ImageFolder`` datasets.

    Inputs:
    - root: data root (see :func:`hwlib.paths.data_root`); the images are in ``<root>/hymenoptera_data``.
    - transforms: dict split -> transform (``"train"``, ``"val"``); missing splits get none.
    - check: verify the tree against the official file counts first.

    Returns a dict ``{"train": ImageFolder, "val": ImageFolder}``; classes ``["ants", "bees"]``.
    Raises :class:`DataError` (saying how to get the data) when the folder is missing, incomplete, or
    holds an image file that cannot be read.
    """
    from torchvision.datasets import ImageFolder

    folder = hymenoptera_folder(root)
    if check:
        verify_tree(folder)
    elif not folder.is_dir():
        raise DataError(f"hymenoptera data not found: {folder} does not exist; "
                        + _FETCH_HINT.format(url=HYMENOPTERA_URL, root=folder.parent))
    transforms = transforms or {}
    datasets = {}
    for split in ("train", "val"):
        is_image = _ImageCheck()
        datasets[split] = ImageFolder(str(folder / split), transform=transforms.get(split), is_valid_file=is_image)
        if is_image.unreadable:
            path, why = is_image.unreadable[0]
            raise DataError(
                f"hymenoptera data in {folder} is corrupt: {len(is_image.unreadable)} image file(s) cannot be "
                f"read, first {path} ({why}); delete the folder and "
                + _FETCH_HINT.format(url=HYMENOPTERA_URL, root=folder.parent)
            )
    return datasets


def _fetch_hymenoptera(folder: Path) -> None:
    """Download the zip, verify it where a checksum is known, unpack it, verify the tree."""
    fetch_zip_folder(HYMENOPTERA_URL, folder, HYMENOPTERA_ZIP_SHA256, verify_tree,
                     invalid="is not the complete official set")


def weights_path(root=None) -> Path:
    """``<data root>/weights/<RESNET18_WEIGHTS_FILE>``: where a weights file is looked for first."""
    return data_root(root) / "weights" / RESNET18_WEIGHTS_FILE


def verify_weights(path: Path) -> None:
    """Raise :class:`DataError` unless ``path``'s SHA-256 starts with the hex digits in its name.

    This is ``torch.hub``'s check (``resnet18-f37072fd.pth`` must hash to ``f37072fd...``).
    """
    path = Path(path)
    match = _HASH_IN_NAME.search(path.name)
    if match is None:
        raise DataError(f"{path.name} carries no hash in its name (expected NAME-<hex digits>.pth)")
    if not path.is_file():
        raise DataError(f"{path} is missing")
    expected = match.group(1)
    actual = sha256_payload(path)
    if not actual.startswith(expected):
        raise DataError(
            f"{path} is corrupt, truncated or not the published file: its sha256 starts with "
            f"{actual[:len(expected)]}, its name promises {expected}. Delete it and run "
            f"`python -m hwlib.data fetch resnet18` (or download {RESNET18_WEIGHTS_URL} there by hand)."
        )


def _fetch_resnet18(folder: Path) -> None:
    """Download the weights (pooch) and verify them; a failure leaves neither the file nor a new folder."""
    dest = folder / RESNET18_WEIGHTS_FILE
    if dest.is_file():
        try:
            verify_weights(dest)
            return
        except DataError:
            dest.unlink()            # a corrupt earlier download: fetch it again
    created = not folder.exists()
    try:
        download(WEIGHTS_BASE_URL + RESNET18_WEIGHTS_FILE, dest)
        verify_weights(dest)
    except DataError:
        dest.unlink(missing_ok=True)
        if created:                  # leave no empty folder behind (the data root may be shared)
            shutil.rmtree(folder, ignore_errors=True)
        raise


@dataclass(frozen=True)
class _CheckedDataset(Dataset):
    """A dataset whose presence is a verification of its folder (no per-file checksums)."""

    check: Callable[[Path], None] | None = field(default=None, compare=False)

    def present(self, root=None) -> bool:
        try:
            self.check(self.path(root))
        except DataError:
            return False
        return True


HYMENOPTERA = register(_CheckedDataset(
    name="hymenoptera", folder="hymenoptera_data",
    description="ants vs bees, 398 images (PyTorch transfer-learning tutorial; Q5)",
    after_fetch=_fetch_hymenoptera, check=verify_tree,
))

RESNET18 = register(_CheckedDataset(
    name="resnet18", folder="weights",
    description="torchvision ResNet-18 ImageNet weights, 45 MB (Q5)",
    after_fetch=_fetch_resnet18, check=lambda folder: verify_weights(folder / RESNET18_WEIGHTS_FILE),
))
