"""WordNet 3.0 through NLTK, offline from Debian's ``wordnet-base`` files.

NLTK 3.10 refuses corpus files outside a root listed in ``nltk.data.path`` (symlinks included),
and Debian's files lack ``lexnames``. So the Debian files are copied once into a cache root of
ours with a generated ``lexnames``; NLTK's own downloader is the fallback when they are absent.
"""

from __future__ import annotations

import functools
import os
import shutil
import warnings
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing nltk costs 1.5 s (it pulls scipy.stats and sklearn): only when read
    from nltk.corpus.reader.wordnet import Synset, WordNetCorpusReader

DEBIAN_WORDNET = Path("/usr/share/wordnet")

# The 45 standard lexicographer files of WordNet 3.0 (lexnames(5WN)), with their syntactic category.
LEXNAMES = [
    ("adj.all", 3),
    ("adj.pert", 3),
    ("adv.all", 4),
    ("noun.Tops", 1),
    ("noun.act", 1),
    ("noun.animal", 1),
    ("noun.artifact", 1),
    ("noun.attribute", 1),
    ("noun.body", 1),
    ("noun.cognition", 1),
    ("noun.communication", 1),
    ("noun.event", 1),
    ("noun.feeling", 1),
    ("noun.food", 1),
    ("noun.group", 1),
    ("noun.location", 1),
    ("noun.motive", 1),
    ("noun.object", 1),
    ("noun.person", 1),
    ("noun.phenomenon", 1),
    ("noun.plant", 1),
    ("noun.possession", 1),
    ("noun.process", 1),
    ("noun.quantity", 1),
    ("noun.relation", 1),
    ("noun.shape", 1),
    ("noun.state", 1),
    ("noun.substance", 1),
    ("noun.time", 1),
    ("verb.body", 2),
    ("verb.change", 2),
    ("verb.cognition", 2),
    ("verb.communication", 2),
    ("verb.competition", 2),
    ("verb.consumption", 2),
    ("verb.contact", 2),
    ("verb.creation", 2),
    ("verb.emotion", 2),
    ("verb.motion", 2),
    ("verb.perception", 2),
    ("verb.possession", 2),
    ("verb.social", 2),
    ("verb.stative", 2),
    ("verb.weather", 2),
    ("adj.ppl", 3),
]
_WORDNET_FILES = [
    "adj.exc",
    "adv.exc",
    "noun.exc",
    "verb.exc",
    "cntlist.rev",
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "index.adj",
    "index.adv",
    "index.noun",
    "index.verb",
    "index.sense",
]


def cache_dir() -> Path:
    """Where headstart keeps machine-wide caches (``$HEADSTART_CACHE`` or ~/.cache/headstart)."""
    return Path(os.environ.get("HEADSTART_CACHE", Path.home() / ".cache" / "headstart"))


def lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in enumerate(LEXNAMES))


def prepare_nltk_root(debian_dir: Path = DEBIAN_WORDNET, root: Path | None = None) -> Path | None:
    """Copy Debian's WordNet 3.0 into ``root/corpora/wordnet`` (+ lexnames); None if absent."""
    if not (debian_dir / "data.noun").is_file():
        return None
    root = root or cache_dir() / "nltk_data"
    target = root / "corpora" / "wordnet"
    stamp = target / ".complete"
    if not stamp.exists():
        target.mkdir(parents=True, exist_ok=True)
        for name in _WORDNET_FILES:
            if (debian_dir / name).exists():
                shutil.copyfile(debian_dir / name, target / name)
        (target / "lexnames").write_text(lexnames_text())
        stamp.touch()
    return root


def wordnet_reader(root: Path) -> WordNetCorpusReader:
    """NLTK's reader over ``root/corpora/wordnet`` (NLTK 3.10 only reads roots in nltk.data.path)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class WordNet30Reader(WordNetCorpusReader):
        def map_wn(self, version: str = "wordnet") -> dict | None:
            """None, NLTK's value for no mapping: NLTK's constructor maps the synsets of its "wordnet" corpus
            (which, with ``root`` first in nltk.data.path, is these files) to these files' version, reading
            index.sense twice (5-10 s of every job that reads WordNet) for the identity. Only the
            multilingual functions would read it, and they are off here."""
            return None

        def open(self, file: str):
            """NLTK's stream of ``file``; an index file of a part of speech as a plain text file: NLTK reads
            each once, line by line, and its seekable reader decodes them in Python (a third of the time
            to open WordNet). Data files and index.sense keep NLTK's reader: they are searched by offset."""
            stream = super().open(file)  # opened as NLTK opens it, with its checks of the file
            if not file.startswith("index.") or file == "index.sense":
                return stream
            with stream:
                text = open(os.dup(stream.stream.fileno()), encoding=self._encoding)  # noqa: SIM115 - the caller's
            text.seek(0)
            return text

    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    with warnings.catch_warnings():  # no Open Multilingual Wordnet: not needed for English labels
        warnings.filterwarnings("ignore", message="The multilingual functions are not available")
        return WordNet30Reader(str(root / "corpora" / "wordnet"), None)


def _version_read_once(reader: WordNetCorpusReader) -> WordNetCorpusReader:
    """``reader``, its version read once: NLTK reads it from data.adj's header in every similarity call
    (``Synset._needs_root``), 40% of the WordNet matrices' time; an open reader's files do not change."""
    version = reader.get_version()
    reader.get_version = lambda: version
    return reader


@functools.cache
def load_wordnet() -> WordNetCorpusReader:
    """WordNet 3.0: Debian's files first, then NLTK data already present, then NLTK's downloader."""
    root = prepare_nltk_root()
    if root is not None:
        return _version_read_once(wordnet_reader(root))
    import nltk

    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        download_dir = cache_dir() / "nltk_data"
        if not nltk.download("wordnet", download_dir=str(download_dir), quiet=True):
            raise RuntimeError(
                "WordNet 3.0 not found: install Debian's wordnet-base (apt-get install wordnet-base)"
                " or allow NLTK to download 'wordnet'"
            ) from None
        nltk.data.path.insert(0, str(download_dir))
    from nltk.corpus import wordnet

    wordnet.ensure_loaded()
    return _version_read_once(wordnet)


def synset_from_wnid(wnid: str) -> Synset:
    """ImageNet wnids are WordNet 3.0 noun offsets: n01440764 -> tench.n.01."""
    if not is_wnid(wnid):
        raise ValueError(f"not an ImageNet wnid: {wnid!r} (expected 'n' + 8 digits)")
    try:
        with warnings.catch_warnings():  # NLTK warns, then returns None: the error below says it once
            warnings.simplefilter("ignore")
            synset = load_wordnet().synset_from_pos_and_offset("n", int(wnid[1:]))
    except Exception:  # NLTK raises WordNetError, or returns None, for an offset that starts no synset
        synset = None
    if synset is None:
        raise ValueError(f"{wnid} is not a WordNet 3.0 noun synset (no noun starts at offset {wnid[1:]})")
    return synset


def is_wnid(ref: str) -> bool:
    return len(ref) == 9 and ref[0] == "n" and ref[1:].isdigit()


def wordnet_files_dir() -> Path | None:
    """The directory holding WordNet 3.0's own files (data.noun, index.noun), if any: Debian's, the cache's,
    or an NLTK data folder's (NLTK_DATA, ~/nltk_data), found without importing NLTK."""
    nltk_roots = [Path(p) for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p] + [Path.home() / "nltk_data"]
    candidates = [DEBIAN_WORDNET, cache_dir() / "nltk_data", *nltk_roots]
    for directory in [candidates[0], *(root / "corpora" / "wordnet" for root in candidates[1:])]:
        if (directory / "data.noun").is_file() and (directory / "index.noun").is_file():
            return directory
    return None


@functools.cache
def _text(path: Path) -> str:
    return path.read_text(encoding="utf8", errors="replace")


def noun_synset_error(ref: str, files: Path | None = None) -> str | None:
    """Why ``ref`` (a wnid such as n03057021, or a name such as coat.n.01) is not a WordNet 3.0 noun
    synset; None if it is, or if WordNet's files are not on this machine.

    Read straight from WordNet's files (a wnid is a byte offset into data.noun; a name's lemma is a
    line of index.noun), so that checking a config costs milliseconds, not NLTK's 1.5 s start.
    """
    files = files or wordnet_files_dir()
    if is_wnid(ref):
        if files is None:
            return None
        offset = int(ref[1:])
        with open(files / "data.noun", "rb") as handle:
            handle.seek(offset)
            line = handle.readline().decode("utf8", errors="replace")
        if not line.startswith(f"{offset:08d} "):
            return f"{ref} is not a WordNet 3.0 noun synset (no noun starts at offset {ref[1:]})"
        return None
    parts = ref.lower().rsplit(".", 2)
    if len(parts) != 3 or not parts[2].isdigit() or not parts[0]:
        return f"{ref!r} is neither a wnid (n + 8 digits) nor a synset name such as coat.n.01"
    lemma, pos, sense = parts
    if pos != "n":
        kind = {"v": "a verb", "a": "an adjective", "s": "an adjective", "r": "an adverb"}.get(pos, f"a {pos!r}")
        return f"{ref} is {kind} synset; target classes are nouns (name.n.NN)"
    if files is None:
        return None
    index = _text(files / "index.noun")
    start = index.find(f"\n{lemma} n ")
    if start < 0:
        return f"{ref}: WordNet 3.0 has no noun {lemma!r}"
    synset_count = int(index[start + 1 : index.index("\n", start + 1)].split()[2])
    if not 1 <= int(sense) <= synset_count:
        return f"{ref}: the noun {lemma!r} has {synset_count} senses in WordNet 3.0 (.n.01 to .n.{synset_count:02d})"
    return None


def noun_wnid_and_lemma(ref: str, files: Path | None = None) -> tuple[str, str] | None:
    """(wnid, first lemma) of a WordNet 3.0 noun synset given as a wnid or a name such as coat.n.01, read
    straight from WordNet's files as :func:`noun_synset_error` does; None without the files or for a
    reference that is no noun synset (that function says why)."""
    files = files or wordnet_files_dir()
    if files is None or noun_synset_error(ref, files) is not None:
        return None
    if is_wnid(ref):
        offset = int(ref[1:])
    else:
        lemma, _, sense = ref.lower().rsplit(".", 2)
        index = _text(files / "index.noun")
        start = index.find(f"\n{lemma} n ")
        fields = index[start + 1 : index.index("\n", start + 1)].split()
        offset = int(fields[-int(fields[2]) :][int(sense) - 1])  # the line ends with its synsets' offsets
    with open(files / "data.noun", "rb") as handle:
        handle.seek(offset)
        fields = handle.readline().decode("utf8", errors="replace").split()
    return f"n{offset:08d}", fields[4]


def wnid_of(synset: Synset) -> str:
    return f"{synset.pos()}{synset.offset():08d}"


def synset_by_name(name: str) -> Synset:
    """'coat.n.01' -> Synset, with a clear error for a name WordNet 3.0 does not have."""
    try:
        synset = load_wordnet().synset(name)
    except Exception as err:  # NLTK raises WordNetError / ValueError for bad names
        raise ValueError(f"unknown WordNet 3.0 synset {name!r}: {err}") from None
    if synset.pos() != "n":
        raise ValueError(f"{name} is not a noun synset; target classes are nouns")
    return synset


def _closure(synset: Synset, relations: tuple[str, ...]) -> set[Synset]:
    return set(synset.closure(lambda s: [t for rel in relations for t in getattr(s, rel)()]))


def ancestors(synset: Synset) -> set[Synset]:
    return _closure(synset, ("hypernyms", "instance_hypernyms"))


def descendants(synset: Synset) -> set[Synset]:
    return _closure(synset, ("hyponyms", "instance_hyponyms"))


def class_type(target: Synset, sources: set[Synset]) -> str:
    """The paper's class types, relative to the source classes.

    identical: the target is a source class; included: a WordNet ancestor is one;
    inclusive: a descendant is one; disjoint: neither.
    """
    if target in sources:
        return "identical"
    if ancestors(target) & sources:
        return "included"
    if descendants(target) & sources:
        return "inclusive"
    return "disjoint"


@functools.cache
def semcor_information_content() -> dict[str, dict[int, float]]:
    """Information content from WordNet's own SemCor sense counts (``cntlist.rev``).

    Built as NLTK's ``WordNetCorpusReader.ic`` builds it (add-one smoothing, counts propagated to
    every hypernym and to the root at offset 0), so NLTK's res/lin/jcn similarities accept it.
    """
    wn = load_wordnet()
    counts_file = Path(wn.root.path if hasattr(wn.root, "path") else str(wn.root)) / "cntlist.rev"
    ic: dict[str, dict[int, float]] = {pos: defaultdict(float) for pos in "nvars"}
    for pos in "nv":
        ic[pos][0] = 1.0
    for synset in wn.all_synsets("n"):
        ic["n"][synset.offset()] = 1.0
    for line in counts_file.read_text().splitlines():
        key, _sense_number, count = line.split()
        if "%1:" not in key:  # nouns only: the target and source classes are nouns
            continue
        try:
            synset = wn.lemma_from_key(key).synset()
        except Exception:  # a handful of keys in cntlist.rev have no lemma in the index
            continue
        weight = float(count)
        for level in synset._iter_hypernym_lists():
            for hypernym in level:
                ic["n"][hypernym.offset()] += weight
        ic["n"][0] += weight
    return ic
