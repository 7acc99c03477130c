"""The dataset stage: target classes and their images, from three sources.

- Fashion-MNIST idx files (Debian's ``dataset-fashion-mnist``, or downloaded with MD5 checks);
- ImageNet-21k ``<wnid>.tar`` archives (local directory or URL template), of which only the listed
  images are extracted, safely;
- any ImageFolder (``root/<label>/*.jpg``, any folder names; a folder named by a wnid is that synset).

Every image is decoded once; CMYK, palette or mislabelled (PNG named .JPEG) images are converted
to RGB JPEG (:func:`to_rgb`), undecodable ones are skipped and reported.
"""

from __future__ import annotations

import gzip
import io
import logging
import tarfile
import zlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from ..core.download import DownloadError, auth_header_from_env, download
from ..core.errors import HeadstartError
from ..core.images import to_rgb
from ..core.tables import write_parquet
from ..core.vocabulary import (
    FASHION_MNIST_FILES,
    FASHION_MNIST_MIRROR,
    IMAGE_SUFFIXES,
    fashion_mnist_label,
    fashion_mnist_local,
    local_archive,
)
from .classes import TargetClass, dataset_classes

logger = logging.getLogger(__name__)


class DatasetError(HeadstartError, RuntimeError):
    """The data cannot satisfy the config; the message names the class and the counts."""


# ---------------------------------------------------------------------------------------------
# Image checks


@dataclass
class IngestLog:
    converted: list[tuple[str, str]] = field(default_factory=list)  # (image, why)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def write(self, path: Path) -> None:
        lines = [f"converted\t{name}\t{why}" for name, why in self.converted]
        lines += [f"skipped\t{name}\t{why}" for name, why in self.skipped]
        Path(path).write_text("status\timage\treason\n" + "".join(line + "\n" for line in lines))


# an image with a side below this many pixels holds no picture to learn from: skipped, and reported
MIN_SIDE = 8


def checked_image(data: bytes, name: str, dest: Path, log: IngestLog) -> Path | None:
    """Decode ``data``; write it to ``dest`` as-is if a clean RGB/grey JPEG, else converted.

    Returns the written path, or None (logged) if the image cannot be decoded.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # raises on truncated or corrupt data
            if min(image.size) < MIN_SIDE:
                log.skipped.append((name, f"{image.size[0]}x{image.size[1]} px: a side below {MIN_SIDE} px"))
                return None
            fmt, mode = image.format, image.mode
            reasons = []
            if fmt != "JPEG":  # stored as JPEG; "named" only where the suffix says another format
                suffix = Path(name).suffix
                named_as_is = suffix.lower() == f".{fmt.lower()}"
                reasons.append(f"{fmt} data" if named_as_is else f"{fmt} data named {suffix or 'without suffix'}")
            rgb = None
            if mode not in ("RGB", "L"):
                rgb, how = to_rgb(image)
                reasons.append(how)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not reasons:
                dest.write_bytes(data)
                return dest
            (rgb or image.convert("RGB")).save(dest, format="JPEG", quality=95)
            log.converted.append((name, ", ".join(reasons)))
            return dest
    except Exception as err:  # PIL raises many types for broken files
        log.skipped.append((name, f"{type(err).__name__}: {err}"))
        return None


def _require(counts: dict[str, dict[str, int]], needed: dict[str, int], classes: list[TargetClass]) -> None:
    for cls in classes:
        for pool, n in needed.items():
            got = counts.get(cls.id, {}).get(pool, 0)
            if got < n:
                raise DatasetError(
                    f"class {cls.id} ({cls.name}) has {got} usable {pool} images, the config needs {n} "
                    "(split.*_per_class)"
                )


def _inventory(rows: list[dict], classes: list[TargetClass], needed: dict[str, int]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["image_id", "path", "class_id", "pool"])
    counts = frame.groupby(["class_id", "pool"]).size().unstack(fill_value=0).to_dict("index") if len(frame) else {}
    _require(counts, needed, classes)
    return frame.sort_values(["class_id", "pool", "image_id"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzip or plain) as a numpy array, checking its magic number."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path}: not an unsigned-byte idx file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DatasetError(f"{path}: truncated idx file ({data.size} of {int(np.prod(shape))} values)")
    return data.reshape(shape)


def download_fashion_mnist(mirror: str | None, download_dir: Path) -> dict[str, Path]:
    """The four idx files downloaded from ``mirror`` (default torchvision's) into ``download_dir``,
    each checked against its canonical MD5 (Debian recompresses its local copies, so theirs differ and
    local files are checked by structure, in :func:`read_idx`)."""
    base = (mirror or FASHION_MNIST_MIRROR).rstrip("/") + "/"
    return {name: download(base + name, download_dir / name, md5=md5) for name, md5 in FASHION_MNIST_FILES.items()}


def ingest_fashion_mnist(
    files: dict[str, Path], classes: list[TargetClass], needed: dict[str, int], out_dir: Path, seed: int, log: IngestLog
) -> pd.DataFrame:
    """Write a seeded sample of ``needed[pool]`` images per class as PNG; return the inventory."""
    pools = {
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    }
    numbers = [fashion_mnist_label(cls.name) for cls in classes]  # by label name: any subset, any order
    rows = []
    for pool, (images_name, labels_name) in pools.items():
        images, labels = read_idx(files[images_name]), read_idx(files[labels_name])
        if len(images) != len(labels):
            raise DatasetError(f"{images_name} has {len(images)} images but {labels_name} {len(labels)} labels")
        for label, cls in zip(numbers, classes, strict=True):
            index = np.flatnonzero(labels == label)
            rng = np.random.default_rng([seed, label, zlib.crc32(pool.encode())])
            chosen = np.sort(rng.choice(index, size=min(needed[pool], len(index)), replace=False))
            for i in tqdm(chosen, desc=f"fashion-mnist {pool} {cls.name}", leave=False):
                image_id = f"{cls.id}_{pool}{i:05d}"
                path = out_dir / cls.id / f"{image_id}.png"
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(images[i], mode="L").save(path)
                rows.append({"image_id": image_id, "path": str(path), "class_id": cls.id, "pool": pool})
    return _inventory(rows, classes, needed)


# ---------------------------------------------------------------------------------------------
# ImageNet-21k archives


def read_image_list(path: Path) -> dict[str, list[str]]:
    """A list of '<wnid>_<n>.JPEG' names -> {wnid: [names in file order]}."""
    by_class: dict[str, list[str]] = {}
    for line in Path(path).read_text().split():
        by_class.setdefault(line.split("_")[0], []).append(line)
    return by_class


def is_safe_member(member: tarfile.TarInfo) -> bool:
    """A regular file whose path stays inside the extraction directory."""
    path = PurePosixPath(member.name)
    return member.isfile() and not path.is_absolute() and ".." not in path.parts


def extract_listed(tar_path: Path, wanted: Iterable[str], wnid_dir: Path, log: IngestLog) -> dict[str, Path]:
    """Extract just the ``wanted`` file names from the archive, checked; returns name -> path.

    Members are matched by base name and written under ``wnid_dir`` by that name only, so no
    member path can escape the directory; unsafe members (links, '..', absolute) are skipped.
    """
    wanted = set(wanted)
    found: dict[str, Path] = {}
    with tarfile.open(tar_path) as archive:
        for member in archive:
            name = PurePosixPath(member.name).name
            if name not in wanted or name in found:
                continue
            if not is_safe_member(member):
                log.skipped.append((member.name, "unsafe archive member (link, absolute or '..' path)"))
                continue
            handle = archive.extractfile(member)
            data = handle.read() if handle else b""
            dest = wnid_dir / (PurePosixPath(name).stem + ".JPEG")
            if (written := checked_image(data, name, dest, log)) is not None:
                found[name] = written
    for name in sorted(wanted - set(found) - {n for n, _ in log.skipped}):
        log.skipped.append((name, f"listed but not in {Path(tar_path).name}"))
    return found


def download_archive(source: dict, wnid: str, dest: Path) -> Path:
    """The archive of ``wnid`` fetched from the config's ``url_template`` to ``dest``, with the auth
    header of ``auth_header_env`` (sent to the template's origin only)."""
    if not source.get("url_template"):
        tar_dir = source.get("tar_dir")
        raise DatasetError(f"{wnid}.tar not found in dataset.imagenet21k.tar_dir ({tar_dir}) and no url_template set")
    try:
        return download(
            source["url_template"].format(wnid=wnid),
            dest,
            headers=auth_header_from_env(source.get("auth_header_env")),
            allow_plain_http_credentials=bool(source.get("allow_plain_http_credentials", False)),
        )
    except DownloadError as err:
        raise DatasetError(f"cannot fetch the images of {wnid}: {err}") from None


def ingest_imagenet21k(
    source: dict,
    classes: list[TargetClass],
    needed: dict[str, int],
    out_dir: Path,
    base_dir: Path,
    downloads: Path,
    log: IngestLog,
) -> pd.DataFrame:
    """The listed images of each class, from ``<tar_dir>/<wnid>.tar`` or else ``<downloads>/<wnid>.tar``
    (fetched beforehand by the download_archive rule, on the submitting host: this never downloads)."""
    lists = {pool: read_image_list(base_dir / source[f"{pool}_list"]) for pool in ("train", "test")}
    rows = []
    for cls in tqdm(classes, desc="imagenet-21k synsets", unit="synset"):
        wanted = {pool: lists[pool].get(cls.wnid, []) for pool in lists}
        wnid_dir = out_dir / cls.wnid
        done = {p.name for p in wnid_dir.glob("*.JPEG")} if wnid_dir.is_dir() else set()
        all_names = [n for names in wanted.values() for n in names]
        if not all_names:
            raise DatasetError(f"class {cls.wnid} ({cls.name}) has no images in the train/test lists")
        if {PurePosixPath(n).stem + ".JPEG" for n in all_names} - done:
            tar_path = local_archive(cls.wnid, source.get("tar_dir")) or downloads / f"{cls.wnid}.tar"
            if not tar_path.is_file():
                raise DatasetError(f"{cls.wnid}.tar is neither in dataset.imagenet21k.tar_dir nor in {downloads}")
            extract_listed(tar_path, all_names, wnid_dir, log)
        for pool, names in wanted.items():
            for name in names:
                path = wnid_dir / (PurePosixPath(name).stem + ".JPEG")
                if path.exists():
                    rows.append(
                        {"image_id": PurePosixPath(name).stem, "path": str(path), "class_id": cls.id, "pool": pool}
                    )
    return _inventory(rows, classes, needed)


# ---------------------------------------------------------------------------------------------
# ImageFolder


def imagefolder_files(root: Path, folder: str) -> list[Path]:
    """The image files of one class of an ImageFolder: ``root/<folder>/*`` with an image suffix."""
    return sorted(p for p in (Path(root) / folder).glob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def ingest_imagefolder(
    root: Path, classes: list[TargetClass], needed: dict[str, int], out_dir: Path, seed: int, log: IngestLog
) -> pd.DataFrame:
    """``root/<folder>/*`` (a class's label, or its wnid): every image checked; the test pool is a seeded
    sample of each class. Folders
    inside a class folder are not read, and are listed as skipped."""
    rows = []
    for cls in tqdm(classes, desc="imagefolder classes", unit="class"):
        for nested in sorted(p for p in (Path(root) / cls.folder).glob("*") if p.is_dir()):
            log.skipped.append((str(nested), "a folder inside a class folder: its images are not read"))
        files = imagefolder_files(root, cls.folder)
        good = []
        for path in files:
            if (checked := _checked_in_place(path, out_dir / cls.id, log)) is not None:
                good.append((path, checked))
        rng = np.random.default_rng([seed, zlib.crc32(cls.id.encode())])
        test = set(rng.choice(len(good), size=min(needed["test"], len(good)), replace=False).tolist())
        for i, (original, path) in enumerate(good):
            # the id keeps the file's suffix: a.jpg and a.png of one class are two images
            rows.append(
                {
                    "image_id": f"{cls.id}_{original.name}",
                    "path": str(path),
                    "class_id": cls.id,
                    "pool": "test" if i in test else "train",
                }
            )
    return _inventory(rows, classes, needed)


def _checked_in_place(path: Path, converted_dir: Path, log: IngestLog) -> Path | None:
    """A clean JPEG/PNG is used where it lies; anything needing conversion is rewritten in ``converted_dir``."""
    try:
        with Image.open(path) as image:
            image.load()
            if (
                min(image.size) >= MIN_SIDE
                and image.mode in ("RGB", "L")
                and image.format in ("JPEG", "PNG")
                and (image.format == "PNG") == (path.suffix.lower() == ".png")
            ):
                return path
    except Exception as err:
        log.skipped.append((str(path), f"{type(err).__name__}: {err}"))
        return None
    # the whole file name: a.png and a.jpg of one class are two images
    return checked_image(path.read_bytes(), str(path), converted_dir / (path.name + ".jpg"), log)


# ---------------------------------------------------------------------------------------------
# The stage


@dataclass(frozen=True)
class StageFiles:
    """The dataset stage's files: the inventory it writes (``inventory``, a Parquet table), the report of
    every converted and skipped image (``report``), the checked images (``images``) and the downloads the
    download rules fetched beforehand (``downloads``, read only: the stage never downloads)."""

    inventory: Path
    report: Path
    images: Path
    downloads: Path

    @classmethod
    def beside(cls, inventory: str | Path, report: str | Path) -> StageFiles:
        """The images and downloads in the inventory's folder (results/<dataset>/images, …/downloads)."""
        folder = Path(inventory).parent
        return cls(Path(inventory), Path(report), folder / "images", folder / "downloads")


def fashion_mnist_stage(dataset: dict, split: dict, seed: int, files: StageFiles) -> pd.DataFrame:
    """The dataset stage for ``source: fashion_mnist``: Debian's idx files, else the downloaded ones."""
    options = dataset.get("fashion_mnist", {})
    idx = fashion_mnist_local(options.get("local_dir")) or {n: files.downloads / n for n in FASHION_MNIST_FILES}
    logger.info("Fashion-MNIST files: %s", ", ".join(str(p) for p in idx.values()))
    return _stage(
        dataset,
        split,
        files,
        lambda classes, needed, log: ingest_fashion_mnist(idx, classes, needed, files.images, seed, log),
    )


def imagenet21k_stage(dataset: dict, split: dict, seed: int, files: StageFiles) -> pd.DataFrame:
    """The dataset stage for ``source: imagenet21k``: the listed images of each synset's archive (the
    lists fix the images: ``seed`` draws nothing here)."""
    del seed
    return _stage(
        dataset,
        split,
        files,
        lambda classes, needed, log: ingest_imagenet21k(
            dataset["imagenet21k"], classes, needed, files.images, Path("."), files.downloads, log
        ),
    )


def imagefolder_stage(dataset: dict, split: dict, seed: int, files: StageFiles) -> pd.DataFrame:
    """The dataset stage for ``source: imagefolder``: every image of each class folder, checked."""
    root = Path(dataset["imagefolder"]["root"])
    return _stage(
        dataset,
        split,
        files,
        lambda classes, needed, log: ingest_imagefolder(root, classes, needed, files.images, seed, log),
    )


def _stage(dataset: dict, split: dict, files: StageFiles, ingest) -> pd.DataFrame:
    """Every target class's images from ``ingest(classes, needed, log)``, checked, reported and written as
    the inventory (with the classes in config order, as the split stage and every table after it know
    them). One function per source calls it, and each source's script runs its own (a change to one
    source's code reruns no other source's dataset). Skipped images are logged too, so that the job's log
    names them when a class then falls short (Snakemake deletes a failed job's outputs)."""
    classes = dataset_classes(dataset)
    needed = {"train": split["train_per_class"], "test": split["test_per_class"]}
    checks = IngestLog()
    try:
        inventory = ingest(classes, needed, checks)
    except DatasetError as err:
        for name, why in checks.skipped:
            logger.warning("skipped %s: %s", name, why)
        skipped = len(checks.skipped)
        if not skipped:
            raise
        raise DatasetError(
            f"{err}; {skipped} image{' was' if skipped == 1 else 's were'} skipped (listed above in this log)"
        ) from None
    checks.write(files.report)
    logger.info(
        "%d images of %d classes; %d converted, %d skipped (listed in %s)",
        len(inventory),
        len(classes),
        len(checks.converted),
        len(checks.skipped),
        files.report,
    )
    meta = {"source": dataset["source"], "classes": [asdict(target) for target in classes]}
    write_parquet(inventory, files.inventory, meta)
    return inventory
