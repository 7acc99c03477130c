import pandas as pd
import pytest

from headstart.core.wordnet import (
    ancestors,
    lexnames_text,
    load_wordnet,
    prepare_nltk_root,
    synset_from_wnid,
    wordnet_reader,
)
from headstart.data.classes import resolve_classes
from headstart.data.split import imagenet1k_wnids, make_classes

from conftest import PAPER


def test_wordnet_30_offline_from_debian_files():
    wn = load_wordnet()
    assert wn.get_version() == "3.0"
    assert synset_from_wnid("n01440764").name() == "tench.n.01"
    # Wu-Palmer by hand: depth(carnivore)=12 (counted from 1 at entity), dog 14, domestic cat 15 -> 24/29
    dog, cat = wn.synset("dog.n.01"), wn.synset("domestic_cat.n.01")
    assert dog.lowest_common_hypernyms(cat)[0].name() == "carnivore.n.01"
    assert dog.wup_similarity(cat) == pytest.approx(24 / 29)


def test_the_workflow_reader_maps_every_lemma_as_nltk_does():
    """It reads the index files as plain text files (NLTK's stream reader decodes them in Python): the same
    lemma -> part of speech -> synset offsets map as a reader NLTK makes over the same files."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    ours = load_wordnet()  # also puts the files' root in nltk.data.path, as NLTK requires
    theirs = WordNetCorpusReader(str(prepare_nltk_root() / "corpora" / "wordnet"), None)
    assert len(ours._lemma_pos_offset_map) == 147306  # WordNet 3.0's lemmas (NLTK keeps the map private)
    assert ours._lemma_pos_offset_map == theirs._lemma_pos_offset_map
    assert ours.synsets("jersey") == theirs.synsets("jersey")


def test_lexnames_generated(tmp_path):
    assert len(lexnames_text().splitlines()) == 45
    root = prepare_nltk_root(root=tmp_path)
    reader = wordnet_reader(root)
    assert reader.synset("coat.n.01").lexname() == "noun.artifact"


def test_ilsvrc_source_classes_come_from_timm():
    wnids = imagenet1k_wnids()
    published = [line.split(" : ")[0] for line in (PAPER / "ilsvrc2012-synsets.txt").read_text().splitlines()]
    assert len(wnids) == 1000 and wnids[0] == "n01440764" and wnids[-1] == "n15075141"
    assert wnids == published  # the paper's published list (shared/paper), same order
    from timm.data import ImageNetInfo

    assert wnids == list(ImageNetInfo("imagenet-1k").label_names())  # the file timm's own reader reads


def test_paper_class_types_match_the_derived_table():
    classes = make_classes(resolve_classes(str(PAPER / "synsets.txt")), imagenet1k_wnids())
    assert classes["type"].value_counts().to_dict() == {"included": 30, "inclusive": 30, "disjoint": 30}
    oracle = pd.read_csv(PAPER / "target-synsets-derived.tsv", sep="\t").set_index("wnid")
    for row in classes.itertuples():
        assert row.type == oracle.at[row.class_id, "type_wordnet30_nltk"], row.class_id
    bullet = synset_from_wnid("n02916350")
    assert classes.set_index("class_id").at["n02916350", "type"] == "included"
    assert synset_from_wnid("n04008634") in ancestors(bullet)  # projectile, missile
