"""Similarity measures against hand computations and NLTK called directly."""

import gzip
import re

import numpy as np
import pytest
from gensim.models import KeyedVectors

from headstart.core.wordnet import load_wordnet, prepare_nltk_root, semcor_information_content
from headstart.similarity.measures import (
    WordVectorError,
    inference_fscore,
    label_words,
    load_word_vectors,
    mean_softmax,
    visual_similarity,
    wordnet_similarity,
    wordvec_similarity,
)


def test_inference_fscore_by_hand():
    # 3 target classes, 4 source outputs. Top-1 outputs per image:
    labels = np.array([0, 0, 0, 1, 1, 2])
    top1 = np.array([1, 1, 2, 1, 2, 0])
    logits = np.eye(4)[top1] * 5.0
    sim = inference_fscore(labels, logits, 3)
    # class 0 (3 images) vs output 1 (predicted 3 times, 2 hits): F = 2*2/(3+3) = 2/3
    assert sim[0, 1] == pytest.approx(2 / 3)
    # class 0 vs output 2 (predicted twice, 1 hit): 2*1/(3+2) = 0.4
    assert sim[0, 2] == pytest.approx(0.4)
    # class 2 has a single image, its top-1 is output 0, predicted once: F = 2/(1+1) = 1
    assert sim[2, 0] == pytest.approx(1.0)
    # output 3 is never predicted: F = 0 for every class
    assert (sim[:, 3] == 0).all()
    assert sim[1, 0] == 0 and sim[1, 1] == pytest.approx(2 * 1 / (2 + 3))


def test_mean_softmax_by_hand():
    logits = np.array([[0.0, np.log(3.0)], [np.log(3.0), 0.0], [0.0, 0.0]])
    sim = mean_softmax(np.array([0, 0, 1]), logits, 2)
    np.testing.assert_allclose(sim, [[0.5, 0.5], [0.5, 0.5]])
    sim = mean_softmax(np.array([0, 1, 1]), logits, 2)
    np.testing.assert_allclose(sim[0], [0.25, 0.75])


def test_visual_similarity_picks_the_measure_by_name():
    logits, labels = np.array([[0.0, np.log(3.0)], [np.log(3.0), 0.0], [0.0, 0.0]]), np.array([0, 1, 1])
    np.testing.assert_array_equal(visual_similarity("softmax", labels, logits, 2), mean_softmax(labels, logits, 2))
    np.testing.assert_array_equal(
        visual_similarity("inference", labels, logits, 2), inference_fscore(labels, logits, 2)
    )
    with pytest.raises(ValueError, match="unknown visual measure 'wordnet'"):
        visual_similarity("wordnet", labels, logits, 2)


@pytest.fixture(scope="module")
def nltk():
    """NLTK's WordNet reader as NLTK makes it, not the workflow's (which skips NLTK's version mapping and
    reads the version once), over the same files."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    load_wordnet()  # the workflow's reader (cached) puts the files' root in nltk.data.path, as NLTK requires
    return WordNetCorpusReader(str(prepare_nltk_root() / "corpora" / "wordnet"), None)


@pytest.mark.parametrize(
    "measure, method",
    [
        ("wordnet", "wup"),
        ("wordnet_path", "path"),
        ("wordnet_lch", "lch"),
        ("wordnet_res", "res"),
        ("wordnet_lin", "lin"),
        ("wordnet_jcn", "jcn"),
    ],
)
def test_wordnet_measures_equal_nltk(measure, method, nltk):
    targets = ["n02916350", "n03057021", "n04459362"]  # bullet; coat; towel
    sources = ["n04008634", "n03676483", "n01945685", "n03594734"]  # projectile; lipstick; slug; jean
    values = wordnet_similarity(measure, targets, sources)
    ic = semcor_information_content()
    for i, t in enumerate(targets):
        for j, s in enumerate(sources):
            a, b = nltk.synset_from_pos_and_offset("n", int(t[1:])), nltk.synset_from_pos_and_offset("n", int(s[1:]))
            expected = (
                getattr(a, f"{method}_similarity")(b, ic)
                if method in ("res", "lin", "jcn")
                else getattr(a, f"{method}_similarity")(b)
            )
            assert values[i, j] == pytest.approx(expected)
    if measure == "wordnet":
        assert values[0].argmax() == 0  # bullet -> projectile, missile (the paper's Table 1)


def test_information_content_is_nltk_shaped():
    ic = semcor_information_content()
    wn = load_wordnet()
    total, dog = 1.0, 1.0  # add-one smoothing, as NLTK's ic()
    dog_synset = wn.synset("dog.n.01")
    for line in open("/usr/share/wordnet/cntlist.rev"):
        key, _, count = line.split()
        if "%1:" in key:
            try:
                synset = wn.lemma_from_key(key).synset()
            except Exception:
                continue
            total += int(count)
            if synset == dog_synset or dog_synset in synset.closure(lambda s: s.hypernyms() + s.instance_hypernyms()):
                dog += int(count)
    assert ic["n"][0] == total  # the root holds every sense count once
    assert ic["n"][dog_synset.offset()] >= dog > 1.0  # a synset holds its own and its hyponyms' counts


def write_word2vec(path, words: dict[str, list[float]], binary: bool) -> None:
    vectors = KeyedVectors(vector_size=3)
    vectors.add_vectors(list(words), np.array(list(words.values()), dtype=np.float32))
    vectors.save_word2vec_format(str(path), binary=binary)


@pytest.mark.parametrize("binary", [False, True])
def test_wordvec_cosine_from_a_word2vec_file(tmp_path, binary):
    path = tmp_path / ("v.bin" if binary else "v.txt")
    write_word2vec(path, {"bullet": [1, 0, 0], "slug": [0, 1, 0], "sea": [0, 0, 1], "missile": [1, 1, 0]}, binary)
    vectors = load_word_vectors(str(path))
    with pytest.warns(UserWarning, match="no word of label"):
        sim = wordvec_similarity(vectors, [["bullet", "slug"]], [["sea slug"], ["missile"], ["Unknownword"]])
    # target mean (0.5, 0.5, 0); "sea slug" mean (0, 0.5, 0.5): cos = 0.25 / (sqrt(.5) sqrt(.5)) = 0.5
    assert sim[0, 0] == pytest.approx(0.5)
    assert sim[0, 1] == pytest.approx(1.0)  # (1,1,0) is parallel to the target mean
    assert sim[0, 2] == 0.0  # no known word: zeros


def test_wordvec_oov_label_warns(tmp_path):
    path = tmp_path / "v.txt"
    write_word2vec(path, {"coat": [1, 0, 0]}, binary=False)
    with pytest.warns(UserWarning, match="no word of label .* is in the word vectors"):
        sim = wordvec_similarity(load_word_vectors(str(path)), [["zzz-qqq"]], [["coat"]])
    assert sim.tolist() == [[0.0]]


def test_glove_text_and_the_default_vectors(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("bag 1 0\npurse 1 0\nboot 0 1\n")
    vectors = load_word_vectors(str(path))
    assert wordvec_similarity(vectors, [["bag"]], [["purse"], ["boot"]]).round(6).tolist() == [[1.0, 0.0]]
    glove = load_word_vectors("glove-6b-50d")
    assert len(glove.key_to_index) == 400000 and glove.vector_size == 50
    assert glove.similarity("coat", "jacket") > glove.similarity("coat", "sandal")


def test_label_words():
    assert label_words(["T-shirt", "tee_shirt", "Sea slug"]) == ["t", "shirt", "tee", "shirt", "sea", "slug"]


@pytest.mark.parametrize(
    "text,fmt,where",
    [
        (
            "coat 1 0 0\nshirt 0 1\ndress 0 0 1\n",
            "glove_text",
            "line 2 has 3 fields (a word and 2 numbers), expected 4",
        ),
        ("3 3\ncoat 1 0 0\nshirt 0 1 x\ndress 0 0 1\n", "word2vec_text", "line 3 has a value that is not a number"),
    ],
)
def test_a_malformed_word_vector_file_names_the_file_and_line(tmp_path, text, fmt, where):
    path = tmp_path / "vectors.txt"
    path.write_text(text)
    with pytest.raises(WordVectorError, match=re.escape(f"word-vector file {path} ({fmt}) cannot be read: {where}")):
        load_word_vectors(str(path))
    with pytest.raises(WordVectorError, match=re.escape(f"word-vector file {tmp_path / 'nope.txt'} does not exist")):
        load_word_vectors(str(tmp_path / "nope.txt"))


def test_word_vector_files_empty_gzipped_or_misnamed(tmp_path):
    from headstart.similarity.measures import WordVectorError

    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(WordVectorError, match=f"word-vector file {empty} is empty"):
        load_word_vectors(str(empty))
    words = {"bag": [1.0, 0.0, 0.5], "purse": [1.0, 0.0, 0.4], "boot": [0.0, 1.0, 0.0]}
    text = tmp_path / "v.txt"
    write_word2vec(text, words, binary=False)
    for name, data in [("v.txt.gz", gzip.compress(text.read_bytes())), ("v.vec", None)]:
        path = tmp_path / name
        if data is None:  # a word2vec binary file named .vec
            write_word2vec(tmp_path / "v.bin", words, binary=True)
            path.write_bytes((tmp_path / "v.bin").read_bytes())
        else:  # a gzipped word2vec text file with its 'count dim' header
            path.write_bytes(data)
        vectors = load_word_vectors(str(path))
        np.testing.assert_allclose(vectors["purse"], words["purse"], rtol=1e-6)
    (tmp_path / "empty.txt.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(WordVectorError, match="is empty"):
        load_word_vectors(str(tmp_path / "empty.txt.gz"))
