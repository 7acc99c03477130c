"""The target classes: from the config (a list of {label, synset?}, a file of wnids, or an ImageFolder's
folders) to ids, names and WordNet synsets. One definition, used by the config check, the Snakefile and
the data stage."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import HeadstartError
from ..core.wordnet import is_wnid, noun_synset_error, noun_wnid_and_lemma, synset_by_name, synset_from_wnid, wnid_of


class ClassesError(HeadstartError, ValueError):
    """Classes that cannot be resolved; the message names the config key."""


def folder_classes(root: Path | str) -> list[dict[str, str]]:
    """Every class folder of an ImageFolder, in name order, as config entries: a folder named by a wnid is
    that synset, any other folder is its own label (unmapped)."""
    folders = sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))
    return [{"synset": name} if is_wnid(name) else {"label": name} for name in folders]


def safe_class_id(label: str) -> str:
    """A label as a class id, safe in paths: runs of characters other than letters, digits, '.', '_' and
    '-' become '_' ('Ankle boot' -> 'Ankle_boot', 'T-shirt/top' -> 'T-shirt_top')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_.") or "_"


@dataclass(frozen=True)
class TargetClass:
    id: str  # unique and safe in paths: a mapped class's wnid, else its label made safe (class_id in every table)
    name: str  # the dataset's own label, or the synset's first lemma
    synset: str | None  # NLTK name, e.g. coat.n.01; None for a class mapped to no WordNet synset (type unmapped)
    folder: str | None = None  # an ImageFolder class's folder under root: its label, else its wnid (its id)

    def __post_init__(self):
        if self.folder is None:
            object.__setattr__(self, "folder", self.id)

    @property
    def wnid(self) -> str | None:
        return self.id if self.synset else None


def dataset_classes(dataset: dict, base_dir: Path = Path(".")) -> list[TargetClass]:
    """The config's target classes, in order: ``dataset.classes``, or, for an ImageFolder without it, every
    class folder under its root."""
    return resolve_classes(class_entries(dataset, base_dir))


def class_entries(dataset: dict, base_dir: Path = Path(".")) -> list[dict[str, str]]:
    """The config's classes as entries {label?, synset?}, in order: ``dataset.classes`` as a list, the wnids
    of the file it names (one per line), or, for an ImageFolder without it, every class folder."""
    spec = dataset.get("classes")
    if spec is None:
        if dataset["source"] != "imagefolder":
            raise ClassesError("dataset.classes: required (only an ImageFolder may leave it out, to take every folder)")
        root = dataset["imagefolder"]["root"]
        if not Path(root).is_dir():
            raise ClassesError(f"dataset.imagefolder.root: {root} is not a directory")
        return folder_classes(root)
    if isinstance(spec, str):
        if not (base_dir / spec).is_file():
            raise ClassesError(f"dataset.classes: {spec} is not a file (a file of wnids, one per line)")
        return [{"synset": line.split()[0]} for line in (base_dir / spec).read_text().splitlines() if line.strip()]
    return spec


def resolve_classes(spec: str | list[dict[str, str]], base_dir: Path = Path(".")) -> list[TargetClass]:
    """Config classes (a list of {label, synset?} or a file of wnids) -> TargetClass list, in order. A
    synset (a wnid or a name such as coat.n.01) maps a class to WordNet; a class without one is unmapped
    and needs a label."""
    entries = class_entries({"classes": spec, "source": None}, base_dir) if isinstance(spec, str) else spec
    classes = []
    for entry in entries:
        ref, label = entry.get("synset"), entry.get("label")
        if ref is None:
            if not label:
                raise ClassesError("dataset.classes: an entry has neither a label nor a synset")
            classes.append(TargetClass(id=safe_class_id(label), name=label, synset=None, folder=label))
            continue
        try:
            synset = synset_from_wnid(ref) if is_wnid(ref) else synset_by_name(ref)
        except ValueError as err:
            raise ClassesError(f"dataset.classes: {err}") from None
        wnid = wnid_of(synset)
        name = label or synset.lemma_names()[0].replace("_", " ")
        classes.append(TargetClass(id=wnid, name=name, synset=synset.name(), folder=label or wnid))
    check_unique([(cls.id, cls.name, cls.synset is not None) for cls in classes])
    return classes


def check_unique(classes: list[tuple[str, str, bool]]) -> None:
    """Each class (id, name, mapped to a synset) has its own id."""
    seen: dict[str, int] = {}
    for index, (class_id, name, mapped) in enumerate(classes):
        if (first := seen.setdefault(class_id, index)) != index:
            other = classes[first][1]
            if mapped:
                raise ClassesError(f"dataset.classes: two target classes map to the same synset {class_id}")
            raise ClassesError(
                f"dataset.classes: the labels {other!r} and {name!r} give the same class id {class_id!r} "
                "(ids keep letters, digits, '.', '_' and '-'): rename one"
            )


def checked_entries(dataset: dict) -> list[tuple[str, str, bool]]:
    """(id, name, mapped) of every configured class, as :func:`resolve_classes` gives them, checked against
    WordNet's own files (milliseconds, not NLTK's 1.5 s start: the config check runs on every Snakemake
    start); where those files are absent a synset is only checked for being a noun, and a class given by
    a synset name has the id None (unknown until NLTK resolves it in the dataset stage)."""
    classes = []
    for entry in class_entries(dataset):
        ref, label = entry.get("synset"), entry.get("label")
        if not ref:
            if not label:
                raise ClassesError("dataset.classes: an entry has neither a label nor a synset")
            classes.append((safe_class_id(label), label, False))
            continue
        if problem := noun_synset_error(ref):
            raise ClassesError(f"dataset.classes: {problem}")
        wnid, lemma = noun_wnid_and_lemma(ref) or (ref if is_wnid(ref) else None, None)
        classes.append((wnid, label or (lemma or ref).replace("_", " "), True))
    check_unique([entry for entry in classes if entry[0] is not None])
    return classes
