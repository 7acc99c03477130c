"""The README's first command on the default config, run as typed in a fresh copy of the repository (the
second set: `pytest -m slow`): the answer it prints is the README's, within the seeds' intervals; it exports
a classifier; and the docs' table of what an edit to the library reruns is Snakemake's own dry run on it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from headstart.pipeline.provenance import rerun_table

from conftest import EXP, ROOT, assert_answer_as_in_readme, copy_repository, planned_jobs, readme_block, snakemake

pytestmark = pytest.mark.slow


def readme_snakemake_command() -> list[str]:
    """The Snakemake part of the README's first command (`bash envs/install.sh && .venv/bin/snakemake ...`)."""
    line = next(line for line in (ROOT / "README.md").read_text().splitlines() if "&& .venv/bin/snakemake" in line)
    command = shlex.split(line.split("&&")[1])
    assert command[0] == ".venv/bin/snakemake"
    return command[1:]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> Path:
    repo = copy_repository(tmp_path_factory.mktemp("default") / "repo")
    snakemake(repo, *readme_snakemake_command())
    return repo


def test_the_readmes_command_gives_the_readmes_answer(default_run):
    assert_answer_as_in_readme(default_run / EXP, readme_block("answer:head"))
    card = json.loads((default_run / EXP / "export/card.json").read_text())
    assert card["shots"] == 500 and len(card["classes"]) == 10
    assert planned_jobs(snakemake(default_run, *readme_snakemake_command(), "-n")) == {}


def test_the_docs_reruns_table_is_snakemakes_own_dry_run(default_run):
    """workflow/docs/workflow.md's table, made again on this run: a comment anywhere reruns nothing."""
    page = (ROOT / "workflow/docs/workflow.md").read_text()
    block = page.split("<!-- generated: reruns -->\n")[1].split("<!-- /generated -->")[0]
    table = rerun_table(default_run, [])
    assert "| a comment or docstring, in every module at once | none | 0 |" in table
    assert block.strip() == table
    assert planned_jobs(snakemake(default_run, *readme_snakemake_command(), "-n")) == {}  # every module put back


def test_init_gives_the_defaults_best_k_heads_and_states_the_studys_k(default_run, tmp_path):
    """headstart init without --k: the K the default study picks per class type (headstart.init.STUDY_K, checked
    against this run's K grid), and the default's K = best heads of every semantic measure, bit for bit."""
    import numpy as np
    import pandas as pd
    import yaml

    from headstart.core.tables import read_tensors
    from headstart.heads.headfile import read_head
    from headstart.heads.initial import best_k_per_type
    from headstart.init import SEMANTIC, STUDY_K, init_head

    run = default_run / "results/fashion_mnist/efficientnet_lite0"
    classes = yaml.safe_load((ROOT / "config.yaml").read_text())["dataset"]["classes"]
    for measure in SEMANTIC:
        assert best_k_per_type(pd.read_parquet(run / f"kgrid/{measure}/all_shots.parquet")) == STUDY_K[measure]
        init_head("tf_efficientnet_lite0", classes, tmp_path / measure, measure)
        workflow, _ = read_head(run / f"heads/{measure}/kbest/all_shots.safetensors")
        exported, _ = read_tensors(tmp_path / measure / "model.safetensors")
        assert np.array_equal(exported["classifier.weight"].numpy(), workflow["weight"]), measure
        assert np.array_equal(exported["classifier.bias"].numpy(), workflow["bias"]), measure


def test_init_with_one_image_per_class_gives_the_defaults_prior_and_imprinted_heads(default_run, tmp_path):
    """headstart init --images with the default's 1-image training set (at the default's preprocessing): the
    default's <measure>_prior head at 1 image per class (whose C, headstart.init.STUDY_PRIOR_C, it takes) and
    its imprinted head, to float precision (the features come through PIL, the workflow's through its decoded
    pixel cache), with their test macro F at iteration 0; the visual measure's K per shot level is the run's."""
    import numpy as np
    import pandas as pd
    import yaml

    from headstart.core.metrics import classification_scores
    from headstart.core.tables import read_arrays, read_tensors
    from headstart.data.split import labelled
    from headstart.heads.headfile import read_head
    from headstart.heads.initial import best_k_per_type
    from headstart.init import MEASURES, STUDY_K_INFERENCE, STUDY_PRIOR_C, init_head

    data, run = default_run / "results/fashion_mnist", default_run / "results/fashion_mnist/efficientnet_lite0"
    for shots, ks in STUDY_K_INFERENCE.items():
        assert best_k_per_type(pd.read_parquet(run / f"kgrid/inference/shots{shots}.parquet")) == ks
    classes = yaml.safe_load((ROOT / "config.yaml").read_text())["dataset"]["classes"]
    manifest = pd.read_parquet(data / "manifest.parquet")
    for row in manifest[(manifest["split"] == "train") & (manifest["rank"] < 1)].itertuples():
        (tmp_path / "photos" / row.class_id).mkdir(parents=True)
        (tmp_path / "photos" / row.class_id / f"{row.image_id}.png").symlink_to(default_run / row.path)
    test, meta = read_arrays(run / "extract/features_test.safetensors", ["features"])
    labels = labelled(meta["image_ids"], manifest, pd.read_parquet(data / "classes.parquet"))["label"].to_numpy()
    curves = pd.read_parquet(run / "head/curves.parquet")
    for measure in MEASURES:
        method = "imprint" if measure == "imprint" else f"{measure}_prior"
        workflow, head_meta = read_head(
            run / f"heads/{method}/{'k0' if measure == 'imprint' else 'kbest'}/shots1.safetensors"
        )
        card = init_head(
            "tf_efficientnet_lite0", classes, tmp_path / measure, measure, images=tmp_path / "photos", size=(183, 160)
        )
        assert card["method"] == method and card["shots"] == 1
        exported, _ = read_tensors(tmp_path / measure / "model.safetensors")
        if measure == "imprint":  # a cosine head: headstart's own format
            weight = exported["classifier.head.weight"].numpy()
            unit = test["features"] / np.linalg.norm(test["features"], axis=1, keepdims=True)
            logits, atol = unit @ weight.T, 1e-5
        else:
            assert head_meta["c"] == STUDY_PRIOR_C[measure] == card["made_by"]["c"]
            weight = exported["classifier.weight"].numpy()
            logits, atol = test["features"] @ weight.T + exported["classifier.bias"].numpy(), 2e-3
        np.testing.assert_allclose(weight, workflow["weight"], atol=atol)
        first = curves[(curves["method"] == method) & (curves["shots"] == 1) & (curves["iteration"] == 0)]
        score = classification_scores(labels, logits.argmax(axis=1), len(classes)).macro_f1
        assert abs(score - first["macro_f1"].mean()) <= 0.005, (measure, score, first["macro_f1"].tolist())
