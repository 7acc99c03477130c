"""The sentence-embedding measure: texts by hand, the packaged encoder against transformers called
directly (BERT, mean pooling over the tokens, unit length: what all-MiniLM-L6-v2's modules.json says)."""

import numpy as np
import pandas as pd
import pytest
import torch

from headstart.core.wordnet import synset_by_name, synset_from_wnid
from headstart.similarity.sentence import (
    SentenceEncoderError,
    class_text,
    class_texts,
    load_encoder,
    sentence_matrix,
    sentence_similarity,
    unpack_encoder,
)


@pytest.fixture(scope="module")
def encoder_folder(tmp_path_factory):
    return unpack_encoder("all-minilm-l6-v2", tmp_path_factory.mktemp("models") / "all-minilm-l6-v2")


def test_class_text_by_hand():
    assert (
        class_text("Coat", ["coat"], "an outer garment that has sleeves") == "Coat: an outer garment that has sleeves"
    )
    assert class_text("Trouser", ["trouser", "pant"], "a garment") == "Trouser (pant): a garment"
    assert class_text("widget_a") == "widget_a"  # an unmapped class: its label alone


def test_class_texts_take_wordnet_glosses_and_the_label_alone_when_unmapped():
    classes = pd.DataFrame(
        {
            "name": ["Sneaker", "gizmo-c"],
            "synset": ["gym_shoe.n.01", None],
            "lemmas": [["gym shoe", "sneaker", "tennis shoe"], ["gizmo-c"]],
        }
    )
    sources = pd.DataFrame({"wnid": ["n01440764"], "lemmas": [["tench", "Tinca tinca"]]})
    targets, source_texts = class_texts(classes, sources)
    gloss = synset_by_name("gym_shoe.n.01").definition()  # NLTK directly
    assert targets == [f"Sneaker (gym shoe, tennis shoe): {gloss}", "gizmo-c"]
    assert source_texts == [f"tench (Tinca tinca): {synset_from_wnid('n01440764').definition()}"]


def _reference_embeddings(folder, texts):
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**tokens).last_hidden_state
    mask = tokens["attention_mask"][..., None].float()
    mean = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(mean, dim=1).double().numpy()


def test_packaged_encoder_matches_bert_mean_pooling_and_ranks_by_meaning(encoder_folder):
    targets = ["Coat: an outer garment that has sleeves and covers the body from shoulder down"]
    sources = ["trench coat: a military style raincoat", "tench: freshwater dace-like game fish", "sandal"]
    sim = sentence_similarity(load_encoder(encoder_folder), targets, sources)
    reference = _reference_embeddings(encoder_folder, targets) @ _reference_embeddings(encoder_folder, sources).T
    np.testing.assert_allclose(sim, reference, atol=1e-5)
    assert sim.shape == (1, 3) and sim[0].argmax() == 0 and sim[0, 0] > sim[0, 1] + 0.2


def test_sentence_matrix_is_target_by_source_and_self_similarity_is_one(encoder_folder):
    classes = pd.DataFrame(
        {
            "class_id": ["n02916350", "x"],
            "name": ["bullet", "x"],
            "synset": ["bullet.n.01", None],
            "lemmas": [["bullet"], []],
        }
    )
    sources = pd.DataFrame({"wnid": ["n02916350"], "lemmas": [["bullet", "slug"]]})
    matrix = sentence_matrix(classes, sources, encoder_folder)
    assert matrix.index.tolist() == ["n02916350", "x"] and matrix.columns.tolist() == ["n02916350"]
    # the same synset: "bullet (slug): gloss" against "bullet: gloss" — near, not equal (the lemma differs)
    assert 0.8 < matrix.iloc[0, 0] <= 1.0 + 1e-6 and matrix.iloc[1, 0] < matrix.iloc[0, 0]


def test_a_folder_that_is_no_encoder_is_named(tmp_path):
    with pytest.raises(SentenceEncoderError, match=f"{tmp_path} is not a sentence-transformers model folder"):
        load_encoder(tmp_path)


def test_unpacking_leaves_no_partial_folder(encoder_folder):
    assert (encoder_folder / "modules.json").is_file() and (encoder_folder / "model.safetensors").is_file()
    assert not encoder_folder.with_name(encoder_folder.name + ".part").exists()
