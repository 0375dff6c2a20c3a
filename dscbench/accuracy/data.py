"""The data sets ``dscbench accuracy`` trains on, read and checked. Nothing is downloaded.

- ``digits`` (the default): scikit-learn's handwritten digits (UCI "Optical Recognition of
  Handwritten Digits", Alpaydin & Kaynak 1998: 1,797 grayscale 8x8 images of the digits 0-9,
  values 0-16), which ship inside scikit-learn (``pip install 'dscbench[accuracy]'``). It is
  split once, the same for every seed: a stratified quarter for the test split
  (``train_test_split(test_size=0.25, stratify=y, random_state=0)``: 1,347 and 450 images).
- ``PATH.npz``: the arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``; x of shape (N, C,
  H, W), or (N, H, W) for one channel; y integer labels 0..K-1. Read without pickles (an .npz
  with object arrays is refused: loading those can run code).
- ``DIR``: an image folder, ``DIR/train/<class>/*`` and ``DIR/test/<class>/*`` (PNG, JPEG, ...,
  read with Pillow); the classes are train's subfolders in sorted order; every image the same
  size; grayscale when all of them are, RGB otherwise.

Inputs are standardized per channel with the training split's mean and sd (the test split
with the same numbers). Every problem is a DataError naming the file, array or value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dscbench.errors import DataError

DIGITS = "digits"
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0


@dataclass
class Dataset:
    """Standardized float32 inputs (N, C, H, W) and int64 labels 0..classes-1."""

    name: str
    source: str  # where it came from, in words
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    class_names: list[str] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)  # per channel, of the training split
    std: list[float] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return (int(c), int(h), int(w))

    def describe(self) -> dict[str, Any]:
        """What accuracy.json records about the data set."""
        return {
            "name": self.name,
            "source": self.source,
            "train": len(self.y_train),
            "test": len(self.y_test),
            "classes": self.classes,
            "class_names": self.class_names,
            "input_shape": list(self.shape),
            "standardized_with": {"mean": self.mean, "std": self.std},
        }


def load(source: str) -> Dataset:
    """``digits``, an .npz file or an image folder (the module's docstring)."""
    if source == DIGITS:
        return digits()
    path = Path(source)
    if path.is_dir():
        return image_folder(path)
    if not path.exists():
        raise DataError(
            f"--data {source}: no such file or folder (give digits, an .npz file or an image "
            "folder with train/ and test/)"
        )
    if path.suffix.lower() == ".npz":
        return npz(path)
    raise DataError(
        f"--data {source}: not an .npz file nor a folder (give digits, an .npz "
        "file or an image folder with train/ and test/)"
    )


def digits() -> Dataset:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise DataError(
            "--data digits: needs scikit-learn, where the data set ships (pip install "
            "'dscbench[accuracy]')"
        ) from None
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, stratify=y, random_state=DIGITS_SPLIT_SEED
    )
    arrays = {
        "x_train": x_train.reshape(-1, 1, 8, 8),
        "y_train": y_train,
        "x_test": x_test.reshape(-1, 1, 8, 8),
        "y_test": y_test,
    }
    source = (
        "scikit-learn's handwritten digits (UCI, Alpaydin & Kaynak 1998), 8x8 grayscale; "
        f"stratified split, test fraction {DIGITS_TEST_FRACTION}, random_state "
        f"{DIGITS_SPLIT_SEED}"
    )
    return checked(DIGITS, source, arrays, [str(d) for d in range(10)])


def npz(path: Path) -> Dataset:
    import zipfile

    if not zipfile.is_zipfile(path):
        raise DataError(f"--data {path}: not an .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in NPZ_KEYS if k not in archive.files]
            if missing:
                raise DataError(
                    f"--data {path}: no array {missing[0]!r} (an .npz for dscbench accuracy "
                    f"holds {', '.join(NPZ_KEYS)})"
                )
            arrays = {k: archive[k] for k in NPZ_KEYS}
    except DataError:
        raise
    except ValueError as exc:  # object arrays, which only a pickle can load
        raise DataError(
            f"--data {path}: {exc}".rstrip(".") + " (refused: only plain numeric arrays are read)"
        ) from None
    except Exception as exc:  # a damaged or foreign file: zipfile, numpy and OS errors alike
        raise DataError(
            f"--data {path}: not a readable .npz file ({type(exc).__name__}: {exc})"
        ) from None
    return checked(path.name, f"arrays from {path}", arrays, [])


def image_folder(root: Path) -> Dataset:
    """``root/train/<class>/*`` and ``root/test/<class>/*``."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataError(
            f"--data {root}: reading an image folder needs Pillow (pip install pillow)"
        ) from None
    splits = {}
    for split in ("train", "test"):
        folder = root / split
        if not folder.is_dir():
            raise DataError(
                f"--data {root}: no {split}/ folder (an image folder holds "
                "train/<class>/* and test/<class>/*)"
            )
        splits[split] = sorted(p for p in folder.iterdir() if p.is_dir())
    names = [p.name for p in splits["train"]]
    if not names:
        raise DataError(f"--data {root}: train/ has no class folders")
    foreign = [p.name for p in splits["test"] if p.name not in names]
    if foreign:
        raise DataError(
            f"--data {root}: test/{foreign[0]}/ is a class that train/ does not "
            f"have (train's classes: {', '.join(names)})"
        )
    images: dict[str, list[tuple[Any, int, Path]]] = {"train": [], "test": []}
    for split, folders in splits.items():
        for folder in folders:
            files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
            for file in sorted(files):
                try:
                    with Image.open(file) as img:
                        img.load()
                        images[split].append((img.copy(), names.index(folder.name), file))
                except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
                    raise DataError(
                        f"--data {root}: {file} is not a readable image ({type(exc).__name__})"
                    ) from None
    return checked(root.name, f"image folder {root}", _image_arrays(root, images), names)


def _image_arrays(root: Path, images: dict[str, list[tuple[Any, int, Path]]]) -> dict[str, Any]:
    everything = images["train"] + images["test"]
    if not images["train"] or not images["test"]:
        empty = "train" if not images["train"] else "test"
        raise DataError(f"--data {root}: {empty}/ holds no images")
    size = everything[0][0].size
    for img, _, file in everything:
        if img.size != size:
            raise DataError(
                f"--data {root}: {file} is {img.size[0]}x{img.size[1]}, the "
                f"first image {size[0]}x{size[1]}; every image must be the same "
                "size"
            )
    gray = all(img.mode in ("L", "1", "I", "I;16", "F") for img, _, _ in everything)
    mode = "F" if gray else "RGB"  # F: 16-bit and float images keep their values

    def stack(items: list[tuple[Any, int, Path]]) -> tuple[np.ndarray, np.ndarray]:
        x = np.stack([np.asarray(img.convert(mode), dtype=np.float32) for img, _, _ in items])
        x = x[:, None] if gray else x.transpose(0, 3, 1, 2)
        return x, np.array([label for _, label, _ in items], dtype=np.int64)

    (x_train, y_train), (x_test, y_test) = stack(images["train"]), stack(images["test"])
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def checked(name: str, source: str, arrays: dict[str, Any], class_names: list[str]) -> Dataset:
    """The arrays checked (shapes, labels, finite values) and standardized."""
    where = f"--data {name}"
    xs = {}
    for split in ("train", "test"):
        x, y = np.asarray(arrays[f"x_{split}"]), np.asarray(arrays[f"y_{split}"])
        if x.dtype.kind not in "biuf":
            raise DataError(f"{where}: x_{split} holds {x.dtype} values, not numbers")
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4:
            raise DataError(
                f"{where}: x_{split} has shape {x.shape}; give (N, C, H, W), or "
                "(N, H, W) for one channel"
            )
        if y.ndim != 1:
            raise DataError(
                f"{where}: y_{split} has shape {y.shape}; labels are one per sample, shape (N,)"
            )
        if len(x) != len(y):
            raise DataError(f"{where}: x_{split} has {len(x)} samples but y_{split} has {len(y)}")
        if len(x) == 0:
            raise DataError(f"{where}: x_{split} has no samples")
        if y.dtype.kind not in "iu":
            raise DataError(
                f"{where}: y_{split} holds {y.dtype} values; labels must be integers 0..K-1"
            )
        if not np.isfinite(x).all():
            raise DataError(f"{where}: x_{split} holds NaN or infinite values")
        xs[split] = (x.astype(np.float32), y.astype(np.int64))
    (x_train, y_train), (x_test, y_test) = xs["train"], xs["test"]
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{where}: x_train's samples are {x_train.shape[1:]}, x_test's "
            f"{x_test.shape[1:]}; both splits must have one shape"
        )
    classes = len(class_names) or int(y_train.max()) + 1
    for split, y in (("train", y_train), ("test", y_test)):
        bad = y[(y < 0) | (y >= classes)]
        if bad.size:
            raise DataError(
                f"{where}: y_{split} has label {int(bad[0])}, out of range (the training "
                f"labels make {classes} classes, 0..{classes - 1})"
            )
    mean = x_train.mean(axis=(0, 2, 3), dtype=np.float64)
    std = x_train.std(axis=(0, 2, 3), dtype=np.float64)
    std = np.where(std > 0, std, 1.0)

    def scaled(x: np.ndarray) -> np.ndarray:
        return ((x - mean[None, :, None, None]) / std[None, :, None, None]).astype(np.float32)

    return Dataset(
        name,
        source,
        scaled(x_train),
        y_train,
        scaled(x_test),
        y_test,
        classes,
        class_names or [str(k) for k in range(classes)],
        [float(m) for m in mean],
        [float(s) for s in std],
    )
