"""The parsed config and the plan the rules read: typed values, the runs of each job, the paths, the targets of
`all`, threads and memory, and the files the dataset stage reads, against values worked out by hand from
config.yaml."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.persistence import UNREPRESENTABLE, PersistenceBase

from headstart.core.vocabulary import Method
from headstart.pipeline.config import FINETUNE_UNTRACKED, Config, parse_config
from headstart.pipeline.plan import Plan

from conftest import ROOT

RUN = "results/fashion_mnist/efficientnet_lite0"


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.fixture(scope="module")
def default(raw) -> Config:
    return parse_config(copy.deepcopy(raw))


def parsed(raw: dict, **sections) -> Config:
    config = copy.deepcopy(raw)
    for key, value in sections.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    return parse_config(config)


def test_the_default_parses_into_typed_values(default):
    assert default.data.name == default.data.source == "fashion_mnist"
    assert default.finetune.shots == (500, 100, 50, 25, 10, 5, 2, 1) and default.finetune.largest_shot == 500
    assert default.finetune.methods[0] == Method("random") and default.finetune.seeds == (0, 1, 2)
    assert default.export.shots == 500 and default.export.method is None and default.export.tracked == {}
    assert default.heads.head_ks == ["1", "2", "3", "5", "10", "20", "50", "best"]
    assert default.similarity.visual == ("inference", "softmax") and len(default.similarity.wordnet) == 6
    assert default.similarity.sentence_folder == "results/models/sentence/all-minilm-l6-v2"
    assert default.model.options["arch"] == "tf_efficientnet_lite0"
    assert default.data.decoded_shots == 500 and "max_shots" not in default.data.split


def test_a_method_knows_its_kind_measure_and_needs():
    assert Method("probe").is_baseline and Method("probe").measure is None and Method("probe").needs_images
    assert Method("wordnet_lin_prior").measure == "wordnet_lin" and Method("wordnet_lin_prior").suffix == "_prior"
    assert Method("inference_calibrated").suffix == "_calibrated" and Method("wordvec").suffix == ""
    assert not Method("wordvec").needs_images and not Method("random").needs_images
    assert Method("inference").needs_images and Method("cotuning_adam").is_cotuning


def test_fine_tuning_settings_split_into_what_changes_a_result_and_what_does_not(raw, default):
    tracked = default.finetune.tracked
    assert not FINETUNE_UNTRACKED & set(tracked) and tracked["dropout"] == 0.75 and tracked["iterations"] == 200
    assert tracked["method_optimizers"] == {}  # Co-Tuning's SGD is no setting of a job without Co-Tuning
    with_cotuning = parsed(raw, finetune={"methods": ["random", "cotuning"], "train": "last_stage"})
    assert with_cotuning.finetune.tracked["method_optimizers"] == {
        "cotuning": raw["finetune"]["method_optimizers"]["cotuning"]
    }
    assert default.extract.tracked == {"batch_size": 8, "trunk_activations": ["train", "val", "test"]}


def test_every_value_a_rule_passes_as_a_param_is_one_snakemake_compares():
    """Snakemake compares a finished job's params by repr for builtin types and ignores any other: a
    dataclass there would never rerun the job when its settings change."""
    config = parse_config(yaml.safe_load((ROOT / "config.yaml").read_text()))
    values = [
        config.data.options,
        config.data.split,
        config.preprocess.options,
        config.model.options,
        config.extract.tracked,
        config.finetune.tracked,
        config.export.tracked,
        config.heads.c_grid,
        config.heads.head_ks,
        config.similarity.wordvec,
        config.finetune.job_runs(500),
    ]
    for value in values:
        assert PersistenceBase._serialize_param_builtin(None, value) is not UNREPRESENTABLE, value
    rules = "\n".join(path.read_text() for path in (ROOT / "workflow/rules").glob("*.smk"))
    assert "=CONFIG.heads.k_grid" not in rules and "=CONFIG.similarity.measures" not in rules  # tuples: list() them


def test_each_job_trains_the_runs_worked_out_by_hand(default):
    # at the largest level every K of finetune.k (1, best) of each similarity method, best only for a prior,
    # K 0 for a baseline; below it, K = best only
    assert default.finetune.job_runs(500) == [
        ("random", "0"), ("inference", "1"), ("inference", "best"), ("inference_prior", "best"),
        ("wordnet", "1"), ("wordnet", "best"), ("wordnet_prior", "best"), ("wordvec", "1"), ("wordvec", "best"),
        ("wordvec_prior", "best"), ("sentence", "1"), ("sentence", "best"), ("sentence_prior", "best"),
        ("softmax", "1"), ("softmax", "best"), ("imprint", "0"), ("probe", "0"),
    ]  # fmt: skip
    assert len(default.finetune.job_runs(100)) == 17 - 5 and ("inference", "1") not in default.finetune.job_runs(1)
    assert [str(run) for run in default.export_runs(0)] == [
        "random/k0", "wordnet/k1", "wordnet/kbest", "wordvec/k1", "wordvec/kbest", "sentence/k1", "sentence/kbest"
    ]  # fmt: skip


def test_each_kind_of_head_has_its_own_place(default):
    plan = Plan(default)
    assert plan.head_file("random", "0", 10, 2) == f"{RUN}/heads/random/k0/seed2.safetensors"
    assert plan.head_file("cotuning", "0", 10, 2) == f"{RUN}/head/heads/cotuning/k0/shots10_seed2.safetensors"
    assert plan.head_file("wordnet", "1", 10, 2) == f"{RUN}/heads/wordnet/k1/all_shots.safetensors"
    assert plan.head_file("inference", "best", 10, 2) == f"{RUN}/heads/inference/kbest/shots10.safetensors"
    assert plan.head_file("inference_prior", "best", 10, 2) == f"{RUN}/heads/inference_prior/kbest/shots10.safetensors"
    assert plan.sim_file("softmax", 5) == f"{RUN}/sim/softmax_shots5.parquet"
    assert plan.sim_file("wordvec", 5) == f"{RUN}/sim/wordvec.parquet"
    assert plan.kgrid_file("wordvec", 5, "_best_k.json") == f"{RUN}/kgrid/wordvec/all_shots_best_k.json"
    assert plan.pixels == "results/fashion_mnist/pixels/resize183_crop160"
    assert len(plan.job_heads(500, 0)) == 17 and plan.job_heads(500, 0)[0].endswith("random/k0/seed0.safetensors")


def test_all_builds_every_figure_table_and_matrix(default):
    targets = Plan(default).all_targets()
    # 2 data tables, 24 matrices (2 visual x 8 levels + 8 semantic), 10 K grids, curves and card, 5 figures
    # (the answer, its curves, Fig. 1-3) x (png, pdf), 5 tables x (csv, md, tex), 10 top-sources tables, the
    # linear C table x 3
    assert len(targets) == len(set(targets)) == 2 + 24 + 10 + 2 + 10 + 15 + 10 + 3
    assert f"{RUN}/head/export/card.json" in targets and f"{RUN}/head/tables/linear_c.md" in targets


def test_threads_and_memory_follow_what_a_job_trains(raw, default):
    assert (Plan(default).finetune_threads, Plan(default).finetune_mem_mb) == (1, 4000)
    last_stage = Plan(parsed(raw, finetune={"train": "last_stage"}))
    assert (last_stage.finetune_threads, last_stage.finetune_mem_mb) == (8, 32000)


IDX_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"]
IDX_FILES += ["t10k-labels-idx1-ubyte.gz"]


def test_the_dataset_stage_downloads_only_what_is_not_on_disk(raw, tmp_path):
    local = Plan(parsed(raw, dataset={"fashion_mnist": {"local_dir": str(tmp_path), "mirror": None}}))
    assert local.download_targets() == [f"results/fashion_mnist/downloads/{name}" for name in IDX_FILES]
    for name in IDX_FILES:
        (tmp_path / name).write_bytes(b"")
    assert local.download_targets() == []


def test_an_imagefolders_images_are_the_dataset_stages_inputs(raw, tmp_path):
    files = {"Mug": ["a.jpg", "b.PNG", "e.bmp", "notes.txt"], "Teapot": ["c.webp", "d.jpeg", "f.png"]}
    for folder, names in files.items():
        (tmp_path / folder).mkdir()
        for name in names:
            (tmp_path / folder / name).write_bytes(b"")
    dataset = {"name": "mine", "source": "imagefolder", "imagefolder": {"root": str(tmp_path)}, "classes": None}
    config = copy.deepcopy(raw)
    config["dataset"] = dataset
    config["similarity"]["measures"] = ["inference", "softmax", "wordvec", "sentence"]
    config["finetune"].update(methods=["random", "inference", "probe"], shots=[1], k=[1, "best"])
    config["split"] = {"train_per_class": 2, "val_per_class": 1, "test_per_class": 1, "max_shots": None}
    config["report"]["example_class"] = None
    plan = Plan(parse_config(config))
    images = ["Mug/a.jpg", "Mug/b.PNG", "Mug/e.bmp", "Teapot/c.webp", "Teapot/d.jpeg", "Teapot/f.png"]
    assert plan.dataset_inputs() == [str(tmp_path / name) for name in images]
    assert plan.download_targets() == [] and Path(plan.data) == Path("results/mine")
