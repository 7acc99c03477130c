"""Your own classes end to end: an ImageFolder of classes WordNet does not know, the measures that need
no WordNet, the exported classifier and the predict command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from sklearn.metrics import f1_score

from headstart.core.vocabulary import RunId, runs_to_keep
from headstart.export.card import load_classifier, read_card
from headstart.finetune.selection import SelectedState, best_selected

from conftest import copy_repository, planned_jobs, snakemake

COLOURS = {"widget_a": (200, 40, 40), "Widget B": (40, 200, 40), "gizmo-c": (40, 40, 200)}  # folder -> mean colour
IDS = {"widget_a": "widget_a", "Widget B": "Widget_B", "gizmo-c": "gizmo-c"}


def widget_folder(root, per_class: int = 11) -> None:
    """Three classes named as no WordNet synset is, each a colour under noise (learnable in a few steps)."""
    rng = np.random.default_rng(0)
    for folder, colour in COLOURS.items():
        (root / folder).mkdir(parents=True)
        for i in range(per_class):
            noise = rng.normal(0, 40, (32, 32, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / folder / f"{i}.png")


@pytest.fixture(scope="module")
def widgets(tmp_path_factory):
    base = tmp_path_factory.mktemp("widgets")
    repo = copy_repository(base / "repo")
    widget_folder(base / "folder")
    override = {
        "dataset": {
            "name": "widgets",
            "source": "imagefolder",
            "imagefolder": {"root": str(base / "folder")},
            "classes": None,  # every folder (config.yaml's Fashion-MNIST classes would otherwise stay, merged)
        },
        "split": {"train_per_class": 6, "val_per_class": 2, "test_per_class": 5},
        "similarity": {"measures": ["inference", "softmax", "wordvec", "sentence"]},
        "finetune": {"methods": ["random", "inference", "softmax", "wordvec", "sentence", "imprint"], "shots": [4, 1]},
        "report": {"example_class": None},
    }
    (repo / "widgets.yaml").write_text(yaml.safe_dump(override))
    snakemake(repo, "--cores", "2", "all", "--configfile", "tests/data/tiny.yaml", "widgets.yaml")
    return repo, base / "folder"


def test_init_from_labels_alone_gives_the_workflows_sentence_and_word_vector_heads(widgets, tmp_path):
    """headstart init on classes with no synset (labels only): the widgets run's untrained heads, bit for bit."""
    from headstart.core.tables import read_tensors
    from headstart.heads.headfile import read_head
    from headstart.init import init_head

    repo, _ = widgets
    labels = ["Widget B", "gizmo-c", "widget_a"]  # the run's class order (its folders, sorted)
    (tmp_path / "classes.txt").write_text("".join(f"{label}\n" for label in labels))
    for measure in ("sentence", "wordvec"):
        card = init_head("tf_efficientnet_lite0", tmp_path / "classes.txt", tmp_path / measure, measure, k=1)
        workflow, meta = read_head(
            repo / f"results/widgets/efficientnet_lite0/heads/{measure}/k1/all_shots.safetensors"
        )
        exported, _ = read_tensors(tmp_path / measure / "model.safetensors")
        assert np.array_equal(exported["classifier.weight"].numpy(), workflow["weight"]), measure
        assert np.array_equal(exported["classifier.bias"].numpy(), workflow["bias"]), measure
        assert [c["id"] for c in card["classes"]] == meta["classes"] and card["classes"][0]["synset"] is None
    # without --k: each unmapped class takes the study's K over all classes
    card = init_head("tf_efficientnet_lite0", tmp_path / "classes.txt", tmp_path / "study", "wordvec")
    assert card["made_by"]["k_per_class"] == [1, 1, 1] and card["k"] == "study"


def test_classes_named_by_their_folders_run_end_to_end_without_wordnet(widgets):
    repo, _ = widgets
    classes = pd.read_parquet(repo / "results/widgets/classes.parquet")
    assert classes["class_id"].tolist() == ["Widget_B", "gizmo-c", "widget_a"]  # every folder, in name order
    assert classes["name"].tolist() == ["Widget B", "gizmo-c", "widget_a"]
    assert classes["type"].unique().tolist() == ["unmapped"] and classes["synset"].isna().all()
    assert classes["lemmas"].map(list).tolist() == [["Widget B"], ["gizmo-c"], ["widget a"]]  # word vectors' words
    wordvec = pd.read_parquet(repo / "results/widgets/efficientnet_lite0/sim/wordvec.parquet")
    assert wordvec.index.tolist() == classes["class_id"].tolist() and wordvec.shape == (3, 1000)
    assert (wordvec.abs().sum(axis=1) > 0).all()  # each label has words GloVe knows ("widget", "gizmo", "b", "c")
    curves = pd.read_parquet(repo / "results/widgets/efficientnet_lite0/head/curves.parquet")
    assert set(curves["method"]) == {"random", "inference", "softmax", "wordvec", "sentence", "imprint"}
    sentence = pd.read_parquet(repo / "results/widgets/efficientnet_lite0/sim/sentence.parquet")
    assert sentence.index.tolist() == classes["class_id"].tolist() and sentence.shape == (3, 1000)
    assert sentence.max(axis=1).between(0.2, 1.0).all()  # each label alone, embedded: near some source class
    assert (repo / "results/widgets/efficientnet_lite0/head/figures/fig3.png").is_file()


def test_a_wordnet_measure_on_unmapped_classes_is_one_config_line(widgets):
    repo, _ = widgets
    measures = yaml.safe_load((repo / "widgets.yaml").read_text())
    measures["similarity"]["measures"] = ["inference", "wordnet"]
    (repo / "wordnet.yaml").write_text(yaml.safe_dump(measures))
    result = snakemake(repo, "-n", "--configfile", "tests/data/tiny.yaml", "wordnet.yaml", check=False)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("headstart:")]
    assert lines == [
        "headstart: invalid config: similarity.measures: wordnet needs every class mapped to a WordNet synset; "
        "unmapped: Widget B, gizmo-c, widget_a (give each a synset in dataset.classes, or measure with "
        "inference, softmax and wordvec only)"
    ]
    assert "Traceback" not in result.stderr


def test_the_exported_classifier_predicts_as_the_job_evaluated(widgets):
    """Its test-split predictions, from the images on disk through the card's preprocessing, score what the
    fine-tuning job recorded at the exported run's selected iteration; the run was chosen on validation."""
    repo, _ = widgets
    export = repo / "results/widgets/efficientnet_lite0/head/export"
    card = read_card(export)
    assert [c["id"] for c in card["classes"]] == ["Widget_B", "gizmo-c", "widget_a"] and card["shots"] == 4
    curves = pd.read_parquet(repo / "results/widgets/efficientnet_lite0/head/curves.parquet")
    runs = curves[(curves["shots"] == 4)].groupby(["method", "k", "seed", "iteration"])[["val_macro_f1", "macro_f1"]]
    per_eval = runs.first().reset_index()
    # the run of the best validation macro F among all runs and seeds, at its earliest best evaluation
    best = per_eval["val_macro_f1"].max()
    assert card["scores"]["val_macro_f1"] == pytest.approx(best)
    mine = per_eval[(per_eval["method"] == card["method"]) & (per_eval["k"] == card["k"])]
    mine = mine[mine["seed"] == card["seed"]].sort_values("iteration")
    assert card["iteration"] == int(mine.loc[mine["val_macro_f1"].idxmax(), "iteration"])
    macro = _test_macro_f1(repo, export)
    assert macro == pytest.approx(card["scores"]["test_macro_f1"], abs=1e-9)
    assert macro == pytest.approx(mine.set_index("iteration").at[card["iteration"], "macro_f1"], abs=1e-9)


def _test_macro_f1(repo, export) -> float:
    """The exported classifier's macro F on the test split, from the images on disk through the card's
    preprocessing (scikit-learn's F-score)."""
    from headstart.export.predict import image_transform

    card, model = read_card(export), load_classifier(export)
    transform = image_transform(card)
    manifest = pd.read_parquet(repo / "results/widgets/manifest.parquet")
    test = manifest[manifest["split"] == "test"]
    with torch.inference_mode():
        images = torch.stack([transform(Image.open(path)) for path in test["path"]])
        predicted = model(images).argmax(dim=1).numpy()
    ids = [c["id"] for c in card["classes"]]
    truth = test["class_id"].map(ids.index).to_numpy()
    return f1_score(truth, predicted, average="macro", labels=range(len(ids)), zero_division=0)


def test_predict_classifies_a_folder_into_a_csv(widgets, tmp_path):
    repo, folder = widgets
    export = repo / "results/widgets/efficientnet_lite0/head/export"
    images = tmp_path / "new"
    images.mkdir()
    for name in COLOURS:
        Image.open(folder / name / "0.png").save(images / f"{IDS[name]}.png")
    (images / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "predictions.csv"
    result = subprocess.run(
        [sys.executable, "-m", "headstart.export.predict", str(export), str(images), "-o", str(out)],
        cwd=repo,
        env={"PYTHONPATH": str(repo / "workflow"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(out)
    assert table.columns.tolist()[:3] == ["image", "label_1", "probability_1"] and "label_3" in table
    model = load_classifier(export)
    from headstart.export.predict import image_transform

    transform = image_transform(read_card(export))
    labels = [c["label"] for c in read_card(export)["classes"]]
    for _, row in table[table["error"].isna()].iterrows():
        with torch.inference_mode():
            expected = labels[int(model(transform(Image.open(row["image"]))[None]).argmax())]
        assert row["label_1"] == expected
        assert row["probability_1"] >= row["probability_2"] >= row["probability_3"]
    assert table.set_index("image").at[str(images / "broken.jpg"), "error"].startswith("UnidentifiedImageError")
    missing = subprocess.run(
        [sys.executable, "-m", "headstart.export.predict", str(tmp_path), str(images)],
        env={"PYTHONPATH": str(repo / "workflow"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1 and missing.stderr.startswith("headstart: ") and "Traceback" not in missing.stderr


def test_only_the_runs_export_names_are_kept_and_the_best_on_validation_wins():
    random, inference_1, inference_best, imprint = runs = [
        RunId("random", "0"), RunId("inference", "1"), RunId("inference", "best"), RunId("imprint", "0")
    ]  # fmt: skip
    assert runs_to_keep(runs, None, None) == runs
    assert runs_to_keep(runs, "inference", None) == [inference_1, inference_best]
    assert runs_to_keep(runs, "inference", "best") == runs_to_keep(runs, None, "best") == [inference_best]
    assert runs_to_keep(runs, "probe", None) == []
    kept = {run: SelectedState(10, score, {}) for run, score in zip(runs, [0.5, 0.7, 0.7, 0.6], strict=True)}
    assert best_selected(kept, runs) == inference_1  # the first of ties in run order
    assert best_selected(kept, [imprint, random]) == imprint
    assert best_selected({}, runs) is None
    assert str(inference_best) == "inference/kbest"  # the run's name in checkpoints and logs


def tampered(export, tmp_path, name, change):
    """A copy of ``export`` whose card (a dict -> the new card, or a text) or weights ``change`` rewrote."""
    import json
    import shutil

    copy = tmp_path / name
    shutil.copytree(export, copy)
    card = json.loads((copy / "card.json").read_text())
    result = change(card, copy)
    if result is not None:
        (copy / "card.json").write_text(result if isinstance(result, str) else json.dumps(result))
    return copy


def _text_with(card, key, text):
    """The card as JSON text with preprocess.``key`` written as ``text`` (what json.dumps would not write)."""
    return json.dumps({**card, "preprocess": {**card["preprocess"], key: "SLOT"}}).replace('"SLOT"', text)


def _classes(card, n):
    extra = [{"id": f"x{i}", "label": f"x{i}"} for i in range(max(0, n - len(card["classes"])))]
    return {**card, "classes": (card["classes"] + extra)[:n]}


def _without(key):
    return lambda card, _: {k: v for k, v in card.items() if k != key}


def _preprocess(**values):
    return lambda card, _: {**card, "preprocess": {**card["preprocess"], **values}}


def _timm_config(change):
    """A change to timm's config.json (None: removed); the card stays."""

    def rewrite(card, folder):
        import json

        path = folder / "config.json"
        config = change(json.loads(path.read_text()))
        path.unlink()
        if config is not None:
            path.write_text(json.dumps(config))

    return rewrite


def _weights(change):
    def rewrite(card, folder):
        from headstart.core.tables import read_tensors, write_tensors

        state, meta = read_tensors(folder / "model.safetensors")
        write_tensors(change(state), folder / "model.safetensors", meta)

    return rewrite


def _truncate(card, folder):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


HOSTILE = {
    "two classes fewer": (lambda card, _: _classes(card, 1), r"classes: .* is too short|lists \d+ classes"),
    "one class fewer": (lambda card, _: _classes(card, 2), r"label_names .* are not the 2 classes of card.json"),
    "one class more": (lambda card, _: _classes(card, 4), r"label_names .* are not the 4 classes of card.json"),
    "classes reversed": (
        lambda card, _: {**card, "classes": card["classes"][::-1]},
        r"config.json: label_names \['Widget B', 'gizmo-c', 'widget_a'\] .* are not the 3 classes of card.json in its "
        r"order \(widget_a, gizmo-c, Widget B\)",
    ),
    "timm's labels reversed": (
        _timm_config(lambda config: {**config, "label_names": config["label_names"][::-1]}),
        r"config.json: label_names \['widget_a', 'gizmo-c', 'Widget B'\]",
    ),
    "timm's config gone": (_timm_config(lambda config: None), r"config.json does not exist: a timm export needs"),
    "timm's config of another network": (
        _timm_config(lambda config: {**config, "architecture": "resnet18"}),
        r"config.json: architecture 'resnet18' is not the card's 'tf_efficientnet_lite0'",
    ),
    "two classes with one label": (
        lambda card, _: {
            **card,
            "classes": [
                card["classes"][0],
                {**card["classes"][1], "label": card["classes"][0]["label"]},
                card["classes"][2],
            ],
        },
        r"classes: label 'Widget B' is given to two classes",
    ),
    "timm's preprocessing not the card's": (
        _preprocess(mean=[0.485, 0.456, 0.406]),
        r"config.json: pretrained_cfg's mean differ from the card's preprocess",
    ),
    "a NaN mean": (
        lambda card, _: _text_with(card, "mean", "[NaN, NaN, NaN]"),
        r"card.json is not JSON: NaN is not a number JSON allows",
    ),
    "an infinite std": (
        lambda card, _: _text_with(card, "std", "[Infinity, 1, 1]"),
        r"card.json is not JSON: Infinity is not a number JSON allows",
    ),
    "a fractional size": (_preprocess(resize=183.0), r"preprocess.resize: 183.0 is not a whole number of pixels"),
    "a huge size": (_preprocess(resize=100000, crop=100000), r"preprocess.resize: 100000 is greater than the maximum"),
    "nested too deep": (lambda card, _: "[" * 100000 + "]" * 100000, r"card.json is not JSON"),
    "timm's weights, torchvision's library": (
        lambda card, _: {**card, "library": "torchvision"},
        r"weights_format timm with library 'torchvision'",
    ),
    "a hub name": (lambda card, _: {**card, "arch": "hf-hub:timm/resnet18.a1_in1k"}, r"arch: .* does not match"),
    "another folder": (lambda card, _: {**card, "arch": "local-dir:/tmp"}, r"arch: .* does not match"),
    "std 0": (_preprocess(std=[0.0, 0.2, 0.2]), r"preprocess.std.0: 0.0 is less than or equal to the minimum of 0"),
    "negative std": (_preprocess(std=[-0.2, 0.2, 0.2]), r"preprocess.std.0: -0.2 is less than or equal"),
    "a 2-value mean": (_preprocess(mean=[0.5, 0.5]), r"preprocess.mean: \[0.5, 0.5\] is too short"),
    "crop over resize": (_preprocess(crop=999), r"preprocess.crop \(999\) is larger than preprocess.resize"),
    "no preprocess": (_without("preprocess"), r"card.json: the card: 'preprocess' is a required property"),
    "no classes": (_without("classes"), r"'classes' is a required property"),
    "no train": (_without("train"), r"'train' is a required property"),
    "no arch": (_without("arch"), r"'arch' is a required property"),
    "classifier changed": (lambda card, _: {**card, "classifier": "cosine"}, r"does not fit the network"),
    "invalid JSON": (lambda card, _: "{not json", r"card.json is not JSON"),
    "a list": (lambda card, _: "[1, 2]", r"card.json: the card: \[1, 2\] is not of type 'object'"),
    "a tensor added": (
        _weights(lambda s: {**s, "extra": next(iter(s.values())).clone()}),
        r"does not fit the network",
    ),
    "a tensor removed": (
        _weights(lambda s: {k: v for k, v in s.items() if not k.endswith("running_var")}),
        r"does not fit the network",
    ),
    "truncated weights": (_truncate, r"model.safetensors is not a readable safetensors file"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_tampered_or_broken_export_is_one_line_naming_the_file(widgets, tmp_path, name, capsys):
    """Issue 28: each is one line naming the file and what is wrong, from the library and the command."""
    from headstart.export.card import ExportError
    from headstart.export.predict import main

    repo, folder = widgets
    change, message = HOSTILE[name]
    export = tampered(repo / "results/widgets/efficientnet_lite0/head/export", tmp_path, "export", change)
    with pytest.raises(ExportError, match=message):
        load_classifier(export)
    # the command, in this process (an exception other than headstart's one line would fail the test here)
    assert main([str(export), str(folder / "widget_a"), "-o", str(tmp_path / "p.csv")]) == 1
    stderr = capsys.readouterr().err
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("headstart: "), stderr
    assert not (tmp_path / "p.csv").exists()


def test_the_predict_command_checks_its_arguments_before_the_work(widgets, tmp_path):
    from headstart.export.card import ExportError
    from headstart.export.predict import predict_folder

    repo, folder = widgets
    export = repo / "results/widgets/efficientnet_lite0/head/export"
    card = (export / "card.json").read_text()
    with pytest.raises(ExportError, match=r"-o .*: is a folder"):
        predict_folder(export, folder, tmp_path)
    with pytest.raises(ExportError, match=r"--top -1: give at least 1 label"):
        predict_folder(export, folder, tmp_path / "p.csv", top=-1)
    with pytest.raises(ExportError, match=r"card.json: is inside the export"):
        predict_folder(export, folder, export / "card.json")
    assert (export / "card.json").read_text() == card
    one = predict_folder(export, folder / "widget_a" / "0.png", tmp_path / "one.csv")  # a single image
    assert one["image"].tolist() == [str(folder / "widget_a" / "0.png")]
    # unsupported formats and links to nothing are listed as skipped, with why
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.open(folder / "widget_a" / "0.png").save(mixed / "a.png")
    Image.open(folder / "widget_a" / "1.png").save(mixed / "b.gif")
    Image.open(folder / "widget_a" / "2.png").save(mixed / "c.tiff")
    (mixed / "d.jpg").symlink_to(tmp_path / "gone.jpg")
    (mixed / "notes.txt").write_text("not an image")
    table = predict_folder(export, mixed, tmp_path / "mixed.csv").set_index("image")
    assert table.at[str(mixed / "a.png"), "label_1"] == "widget_a"
    assert table.at[str(mixed / "b.gif"), "error"].startswith("skipped: GIF is not read")
    assert table.at[str(mixed / "c.tiff"), "error"].startswith("skipped: TIFF is not read")
    assert table.at[str(mixed / "d.jpg"), "error"] == "skipped: a link to nothing"
    assert str(mixed / "notes.txt") not in table.index  # not an image file: not listed


def test_predict_never_overwrites_what_is_not_its_own_csv(widgets, tmp_path):
    """Issue 39: an input image, a file of the export, an existing file that is no CSV, a folder that is a
    file or cannot be written: each refused before the first image, and the file as it was."""
    import os
    import shutil

    from headstart.export.card import ExportError
    from headstart.export.predict import predict_folder

    repo, folder = widgets
    export = tmp_path / "export"
    shutil.copytree(repo / "results/widgets/efficientnet_lite0/head/export", export)
    images = tmp_path / "images"
    shutil.copytree(folder / "widget_a", images)
    before = {path: path.read_bytes() for path in [*export.iterdir(), *images.iterdir()]}
    (tmp_path / "notes.docx").write_bytes(b"the user's own")
    (tmp_path / "a_file").write_text("")
    (tmp_path / "loop.csv").symlink_to(tmp_path / "loop.csv")
    refused = {
        tmp_path / "loop.csv": r"loop",
        tmp_path / ("x" * 240 + ".csv"): r"the file name is longer than 200 bytes",
        images / "0.png": r"is one of the images to classify",
        export / "config.json": r"is inside the export",
        export / "new.csv": r"is inside the export",
        tmp_path / "notes.docx": r"exists and is not a CSV file",
        tmp_path / "a_file" / "p.csv": r"a_file is a file, not a folder",
    }
    for out, message in refused.items():
        with pytest.raises(ExportError, match=f"-o {out}: .*{message}"):
            predict_folder(export, images, out)
    with pytest.raises(ExportError, match=r"-o .*/new_folder/: is a folder; name the CSV file"):
        predict_folder(export, images, f"{tmp_path}/new_folder/")
    linked = tmp_path / "linked.csv"  # a link at the output: replaced by the CSV, its target kept
    linked.symlink_to(tmp_path / "notes.docx")
    predict_folder(export, images, linked)
    assert not linked.is_symlink() and (tmp_path / "notes.docx").read_bytes() == b"the user's own"
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ExportError, match=r"cannot be written"):
            predict_folder(export, images, locked / "p.csv")
    assert {path: path.read_bytes() for path in before} == before
    assert (tmp_path / "notes.docx").read_bytes() == b"the user's own" and not (export / "new.csv").exists()
    out = tmp_path / "new" / "deeper" / "p.csv"  # a folder that does not exist yet is made
    assert len(predict_folder(export, images, out)) == len(list(images.iterdir())) and out.is_file()
    assert [p.name for p in out.parent.iterdir()] == ["p.csv"]  # nothing left beside it (written whole, renamed)


def test_predict_fails_when_no_image_could_be_classified_and_counts_what_it_did(widgets, tmp_path):
    repo, folder = widgets
    export = repo / "results/widgets/efficientnet_lite0/head/export"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not a png")
    (broken / "b.gif").write_bytes(b"GIF89a")
    command = [sys.executable, "-m", "headstart.export.predict", str(export)]
    env = {"PYTHONPATH": str(repo / "workflow"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [*command, str(broken), "-o", str(tmp_path / "p.csv")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1 and "no image could be classified (2 unreadable or skipped" in result.stderr
    assert not (tmp_path / "p.csv").exists()
    shutil_copy = (folder / "widget_a" / "0.png").read_bytes()
    (broken / "c.png").write_bytes(shutil_copy)
    result = subprocess.run(
        [*command, str(broken), "-o", str(tmp_path / "p.csv")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0 and "1 images classified, 2 unreadable or skipped" in result.stdout


def test_images_in_a_linked_folder_are_classified_and_a_link_loop_ends(widgets, tmp_path):
    from headstart.export.predict import image_files

    repo, folder = widgets
    root = tmp_path / "photos"
    root.mkdir()
    (root / "linked").symlink_to(folder / "widget_a", target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    found, skipped = image_files(root)
    assert sorted(p.name for p in found) == sorted(p.name for p in (folder / "widget_a").iterdir()) and not skipped


def test_loading_an_export_reaches_no_network_and_no_other_folder(widgets, monkeypatch):
    """Issue 39: with every socket refused, the export loads and predicts; it reads only its own folder."""
    import os
    import socket

    import torch

    repo, _ = widgets
    export = repo / "results/widgets/efficientnet_lite0/head/export"

    def no_network(*args, **kwargs):
        raise AssertionError("the network was reached")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    opened, recording = [], [True]
    sys.addaudithook(lambda event, args: recording[0] and event == "open" and opened.append(str(args[0])))
    model = load_classifier(export)
    recording[0] = False
    monkeypatch.undo()
    card = read_card(export)
    logits = model(torch.zeros(1, 3, card["preprocess"]["crop"], card["preprocess"]["crop"]))
    assert logits.shape == (1, 3)
    python = (sys.prefix, sys.base_prefix, "/proc/", "/sys/", "/dev/")
    data = [p for p in opened if not p.endswith((".py", ".pyc", ".so")) and not p.startswith(python) and p != "."]
    assert data and all(os.path.realpath(p).startswith(str(export.resolve())) for p in data), data


def readme_timm_snippet() -> str:
    from conftest import ROOT

    blocks = (ROOT / "README.md").read_text().split("```python\n")[1:]
    return next(block.split("```")[0] for block in blocks if "local-dir:" in block)


def test_the_readmes_timm_snippet_predicts_as_headstart_does(widgets, tmp_path):
    """Issue 39: an EXIF-rotated JPEG and a 16-bit PNG get the same probabilities from the README's timm lines
    as from headstart predict (which reads them upright and scaled, headstart.core.images.to_rgb)."""
    from headstart.export.predict import predict_folder

    repo, folder = widgets
    export = repo / "results/widgets/efficientnet_lite0/head/export"
    photos = tmp_path / "photos"
    photos.mkdir()
    upright = Image.open(folder / "widget_a" / "0.png").convert("RGB").resize((96, 64))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view": stored turned the other way
    upright.transpose(Image.Transpose.ROTATE_90).save(photos / "sideways.jpg", exif=exif.tobytes(), quality=95)
    grey = np.asarray(Image.open(folder / "Widget B" / "0.png").convert("L"), dtype=np.uint16) * 40 + 1000
    Image.fromarray(grey.astype(np.uint16)).save(photos / "deep.png")
    assert Image.open(photos / "deep.png").mode.startswith("I")
    table = predict_folder(export, photos, tmp_path / "p.csv", top=3).set_index("image")
    for name in ("sideways.jpg", "deep.png"):
        code = readme_timm_snippet()
        code = code.replace("results/mine/efficientnet_lite0/head/export", str(export)).replace(
            '"photo.jpg"', repr(str(photos / name))
        )
        scope: dict = {}
        exec(code, scope)  # noqa: S102 - the README's own lines, as a user runs them
        probabilities, labels = scope["probabilities"], scope["labels"]
        row = table.loc[str(photos / name)]
        for rank in (1, 2, 3):
            index = labels.index(row[f"label_{rank}"])
            assert float(probabilities[index]) == pytest.approx(row[f"probability_{rank}"], abs=1e-4), (name, rank)


@pytest.fixture(scope="module")
def lite0_weights(tmp_path_factory):
    from headstart.extract.models import save_source_weights

    from conftest import ROOT

    entry = yaml.safe_load((ROOT / "config.yaml").read_text())["models"]["efficientnet_lite0"]
    path = tmp_path_factory.mktemp("weights") / "weights.safetensors"
    save_source_weights(entry, path, "efficientnet_lite0")
    return entry, path


def candidate(path, classifier: str, train: str = "head"):
    """A fine-tuning job's export candidate (headstart.finetune.selection.write_selected's format) with a random
    head."""
    from headstart.core.tables import write_tensors

    rng = np.random.default_rng(0)
    tensors = {"head.weight": rng.normal(0, 0.05, (3, 1280)).astype(np.float32)}
    if classifier == "linear":
        tensors["head.bias"] = rng.normal(0, 0.1, 3).astype(np.float32)
    else:
        tensors["head.scale"] = np.array([7.0], np.float32)
    scores = {"val_macro_f1": 0.5, "val_accuracy": 0.5, "test_macro_f1": 0.5, "test_accuracy": 0.5}
    meta = {"method": "m", "k": "0", "shots": 4, "seed": 0, "iteration": 10, "classifier": classifier, "scores": scores}
    write_tensors(tensors, path, meta)
    return path


CLASSES = pd.DataFrame({"class_id": ["a", "b", "c"], "name": ["Ant", "Bee", "Cat"], "synset": [None, None, None]})
PRE = {"resize": 73, "crop": 64}


def test_a_linear_timm_export_loads_with_timm_alone(lite0_weights, tmp_path):
    """Issue 28: config.json + model.safetensors in timm's own names; timm.create_model('local-dir:...') gives
    the logits headstart.load_classifier gives, and timm's data config is the card's preprocessing."""
    import json

    import timm

    from headstart.export.build import export_classifier

    entry, weights = lite0_weights
    out = tmp_path / "export"
    card = export_classifier(
        candidate(tmp_path / "c.safetensors", "linear"), entry, "lite0", weights, CLASSES, PRE, "head", out
    )
    assert card["weights_format"] == "timm" and "timm alone" in card["load_with"]
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "tf_efficientnet_lite0" and config["num_classes"] == 3
    assert config["label_names"] == ["Ant", "Bee", "Cat"]
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    data = timm.data.resolve_data_config({}, model=model)
    assert data["input_size"] == (3, 64, 64) and data["crop_pct"] == pytest.approx(64 / 73)
    assert tuple(data["mean"]) == tuple(card["preprocess"]["mean"]) and tuple(data["std"]) == tuple(
        card["preprocess"]["std"]
    )
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(model(images), load_classifier(out)(images), rtol=0, atol=1e-5)
    # and the head is the candidate's: the first logits are the frozen features times its rows
    from headstart.core.tables import read_tensors

    state, _ = read_tensors(out / "model.safetensors")
    head, _ = read_tensors(tmp_path / "c.safetensors")
    torch.testing.assert_close(state["classifier.weight"], head["head.weight"])


def test_a_cosine_head_stays_in_headstarts_format_and_says_so(lite0_weights, tmp_path):
    from headstart.export.build import export_classifier
    from headstart.export.card import ExportError

    entry, weights = lite0_weights
    out = tmp_path / "export"
    (out).mkdir()
    (out / "config.json").write_text("{}")  # a stale timm config of an earlier export: removed
    card = export_classifier(
        candidate(tmp_path / "c.safetensors", "cosine"), entry, "lite0", weights, CLASSES, PRE, "head", out
    )
    assert card["weights_format"] == "headstart" and "headstart.load_classifier" in card["load_with"]
    assert not (out / "config.json").exists()
    logits = load_classifier(out)(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 3) and logits.abs().max() <= 7.0 + 1e-4  # scale times cosines
    # headstart's format names the network's parts by the card's training mode: another mode does not fit
    changed = tampered(out, tmp_path, "changed", lambda card, _: {**card, "train": "last_stage"})
    with pytest.raises(ExportError, match="does not fit the network card.json describes"):
        load_classifier(changed)


def test_pip_install_gives_the_headstart_command_from_any_folder(widgets, tmp_path):
    """Issue 28: `pip install .` (not editable) installs the library and the `headstart` command; it runs
    outside the checkout. (--no-deps into a folder of its own: the .venv already holds the dependencies.)"""
    import os
    import shutil

    from conftest import ROOT

    repo, folder = widgets
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", "results", ".snakemake", ".git", "*.egg-info"))
    prefix = tmp_path / "prefix"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--prefix",
            str(prefix),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    site = next(prefix.glob("lib/python3*/site-packages"))
    assert (site / "headstart" / "export" / "predict.py").is_file()  # every stage's sub-package is installed
    assert not (site / "headstart" / "__editable__").exists()
    env = {**os.environ, "PYTHONPATH": str(site), "PATH": f"{prefix / 'bin'}:{os.environ['PATH']}"}
    env.pop("PYTHONHOME", None)
    export = repo / "results/widgets/efficientnet_lite0/head/export"
    out = tmp_path / "elsewhere" / "predictions.csv"
    result = subprocess.run(
        [str(prefix / "bin/headstart"), "predict", str(export), str(folder / "widget_a"), "-o", str(out)],
        cwd=tmp_path,  # not the checkout
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(out)
    assert len(table) == 11 and (table["label_1"] == "widget_a").mean() > 0.5

    def command(*args):
        return subprocess.run([str(prefix / "bin/headstart"), *args], env=env, capture_output=True, text=True)

    usage = command()
    assert usage.returncode == 2 and usage.stderr.startswith("headstart: no command given\nusage:")
    bogus = command("bogus")
    assert bogus.returncode == 2 and bogus.stderr.startswith("headstart: unknown command 'bogus'\nusage:")
    assert "headstart predict" in bogus.stderr and command("--help").returncode == 0
    version = command("--version")
    assert version.returncode == 0 and version.stdout == "headstart 0.1.0\n"


def test_zero_images_exports_the_untrained_head_best_on_validation(widgets):
    """export.shots 0: no image of the classes trains anything; the classifier is the untrained head (of
    random, word vectors and sentences) best on validation at iteration 0, and predicts as evaluated there."""
    repo, _ = widgets
    (repo / "zero.yaml").write_text(yaml.safe_dump({"export": {"shots": 0}}))
    args = ("all", "--configfile", "tests/data/tiny.yaml", "widgets.yaml", "zero.yaml")
    jobs = planned_jobs(snakemake(repo, "-n", *args))
    # the jobs of 4 shots no longer keep weights (their params change): they rerun from their finished checkpoints
    assert jobs["export_untrained"] == 2 and jobs["export"] == 1 and jobs["finetune"] == 2
    assert not {"finetune_export", "heads_similarity", "heads_linear", "extract"} & set(jobs)
    snakemake(repo, "--cores", "2", *args)
    log = repo / "results/logs/finetune/widgets/efficientnet_lite0/head/shots4_seed0.log"
    assert "holds the finished curves" in log.read_text()
    export = repo / "results/widgets/efficientnet_lite0/head/export"
    card = read_card(export)
    assert (card["shots"], card["iteration"], card["k"]) == (0, 0, "best" if card["method"] != "random" else "0")
    curves = pd.read_parquet(repo / "results/widgets/efficientnet_lite0/head/curves.parquet")
    start = curves[(curves["shots"] == 4) & (curves["iteration"] == 0)]
    start = start[start["method"].isin(["random", "wordvec", "sentence"]) & start["k"].isin(["best", "0"])]
    scores = start.groupby(["method", "seed"])[["val_macro_f1", "macro_f1"]].first()
    assert card["scores"]["val_macro_f1"] == pytest.approx(scores["val_macro_f1"].max())
    assert card["scores"]["test_macro_f1"] == pytest.approx(scores.loc[(card["method"], card["seed"]), "macro_f1"])
    assert _test_macro_f1(repo, export) == pytest.approx(card["scores"]["test_macro_f1"], abs=1e-9)
    answer = pd.read_csv(repo / "results/widgets/efficientnet_lite0/head/tables/answer.csv")
    assert answer["shots"].tolist() == [4, 1, 0]  # the untrained heads answer at 0 images too
    (repo / "zero.yaml").write_text(yaml.safe_dump({"export": {"shots": 0, "method": "inference"}}))
    result = snakemake(repo, "-n", *args, check=False)
    assert result.returncode != 0 and (
        "headstart: invalid config: export.shots: 0 images per class needs a method whose head needs no image"
        in result.stderr
    )
