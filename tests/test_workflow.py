"""The workflow as a user runs it: a tiny real run in a fresh copy of the repository, then
dry-runs, a single-figure rerun, the report, lint, and the paper preset's plan."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from headstart.core.tables import read_metadata, read_tensor_metadata
from headstart.extract.models import eval_transform, load_source_model, normalization

from conftest import EXP, ROOT, RUN, TINY, copy_repository, planned_jobs, snakemake


def test_tiny_run_writes_every_stage(tiny):
    classes = pd.read_parquet(tiny / "results/fashion_mnist/classes.parquet")
    assert classes["class_id"].tolist()[:2] == ["n03595614", "n04489008"]  # T-shirt (jersey), trouser
    assert classes.set_index("name").at["Sandal", "type"] == "identical"
    manifest = pd.read_parquet(tiny / "results/fashion_mnist/manifest.parquet")
    assert manifest.groupby("split").size().to_dict() == {"test": 80, "train": 200, "val": 50}
    sources = pd.read_parquet(tiny / "results/models/efficientnet_lite0/source_classes.parquet")["wnid"].tolist()
    for path in [
        "sim/inference_shots20.parquet",
        "sim/inference_shots2.parquet",
        "sim/wordnet.parquet",
        "sim/wordvec.parquet",
    ]:
        matrix = pd.read_parquet(tiny / RUN / path)
        assert matrix.index.tolist() == classes["class_id"].tolist() and matrix.columns.tolist() == sources
        assert matrix.dtypes.unique().tolist() == [np.float32] and not matrix.isna().any().any()
        assert read_metadata(tiny / RUN / path)["model"] == "efficientnet_lite0"
    wordnet = pd.read_parquet(tiny / RUN / "sim/wordnet.parquet")
    assert wordnet.loc["n04133789", "n04133789"] == 1.0  # sandal is an ILSVRC class itself
    names = ["figures/answer.png", "figures/answer_curves.png", "figures/fig1.png", "figures/fig2.pdf"]
    names += ["figures/fig3.png", "tables/answer.md"]
    for name in [*names, "tables/table1.md", "tables/table2.tex"]:
        assert (tiny / EXP / name).stat().st_size > 0  # each (dataset, model) keeps its own
    table2 = pd.read_csv(tiny / EXP / "tables/table2.csv")
    methods = {"random", "inference", "wordnet", "imprint", "probe", "inference_prior"}
    assert set(table2["method"]) == methods and set(table2["shots"]) == {20, 2}
    assert (table2["selected"] <= table2["best"] + 1e-12).all()  # the test maximum bounds the selected score
    answer = pd.read_csv(tiny / EXP / "tables/answer.csv").set_index("shots")
    for shots in (20, 2):  # the answer: the best mean validation score at the selected evaluation; test beside
        level = table2[table2["shots"] == shots].set_index("method")["selected"]
        assert answer.at[shots, "selected"] == pytest.approx(level[answer.at[shots, "best_method"]])
        assert answer.at[shots, "test_best_method"] == level.idxmax()
    # the probe and the prior chose their L2 strength on validation: logged, in the metadata and the sweep table
    probe = read_tensor_metadata(tiny / RUN / "heads/probe/k0/shots20.safetensors")
    sweep = pd.read_parquet(tiny / RUN / "heads/probe/k0/shots20_sweep.parquet")
    assert probe["picked_on"] == "val" and probe["c"] == sweep.loc[sweep["val_macro_f1"].idxmax(), "c"]
    log = (
        tiny / "results/logs/heads_linear/fashion_mnist/efficientnet_lite0/inference_prior_kbest_shots20.log"
    ).read_text()
    assert "chosen on validation" in log
    # a fine-tuning job's log shows its progress and what it selected
    log = (tiny / "results/logs/finetune/fashion_mnist/efficientnet_lite0/head/shots20_seed0.log").read_text()
    assert "it/s" in log and "val F random/k0=" in log and "selected" in log
    for shots in [20, 2]:
        best_k = yaml.safe_load((tiny / RUN / f"kgrid/inference/shots{shots}_best_k.json").read_text())
        assert best_k["picked_on"] == "val" and best_k["shots"] == shots
        assert set(best_k["best_k"]) == set(classes["type"])


def test_logits_parquet_equal_a_direct_forward(tiny):
    entry = yaml.safe_load((ROOT / "config.yaml").read_text())["models"]["efficientnet_lite0"]
    model = load_source_model(entry)
    transform = eval_transform(72, 64, *normalization(model, entry))
    logits = pd.read_parquet(tiny / RUN / "extract/logits_test.parquet")
    manifest = pd.read_parquet(tiny / "results/fashion_mnist/manifest.parquet").set_index("image_id")
    ids = logits.index[:4]
    with torch.inference_mode():
        batch = torch.stack([transform(Image.open(tiny / manifest.at[i, "path"])) for i in ids])
        direct = model(batch).numpy()
    np.testing.assert_allclose(logits.loc[ids].to_numpy(), direct, atol=2e-4, rtol=1e-4)  # fp32 both ways
    assert logits.loc[ids[0]].nlargest(3).index.str.match(r"n\d{8}").all()


def test_similarity_init_beats_random_at_iteration_zero(tiny):
    curves = pd.read_parquet(tiny / EXP / "curves.parquet")
    first = curves[curves["iteration"] == 0].groupby(["method", "k", "shots"])["macro_f1"].mean()
    assert first[("random", "0", 20)] < 0.25  # 10 classes: chance is 0.1
    assert first[("inference", "best", 20)] > first[("random", "0", 20)] + 0.2
    # the random head is drawn per seed: its iteration-0 scores differ across seeds, for every shot level
    random_first = curves[(curves["iteration"] == 0) & (curves["method"] == "random")]
    per_seed = random_first.groupby(["shots", "seed"])["macro_f1"].first().unstack("seed")
    assert (per_seed[0] != per_seed[1]).all()
    heads = [read_tensor_metadata(tiny / RUN / f"heads/random/k0/seed{seed}.safetensors") for seed in (0, 1)]
    assert [h["seed"] for h in heads] == [0, 1]


def test_rerun_plans_nothing_and_one_figure_reruns_alone(tiny):
    assert planned_jobs(snakemake(tiny, "-n", *TINY)) == {}
    script = tiny / "workflow/scripts/fig3.py"
    original = script.read_text()
    script.write_text(original + "# an edit to the plotting code\n")
    try:
        assert planned_jobs(snakemake(tiny, "-n", *TINY)) == {"fig3": 1}
    finally:
        script.write_text(original)
    before = (tiny / EXP / "figures/fig3.png").stat().st_mtime_ns
    result = snakemake(tiny, "--cores", "1", *TINY, "--forcerun", "fig3", f"{EXP}/figures/fig3.png")
    assert planned_jobs(result) == {"fig3": 1}
    assert (tiny / EXP / "figures/fig3.png").stat().st_mtime_ns > before


def planned_after_editing(repo, changes: dict[str, object]) -> dict[str, int]:
    """The tiny config's dry run in ``repo`` with each library module named in ``changes`` (its path under
    workflow/headstart) rewritten by its function (text -> text), then put back."""
    paths = {module: repo / "workflow/headstart" / module for module in changes}
    originals = {module: path.read_text() for module, path in paths.items()}
    try:
        for module, change in changes.items():
            edited = change(originals[module])
            assert edited != originals[module], module
            paths[module].write_text(edited)
        return planned_jobs(snakemake(repo, "-n", *TINY))
    finally:
        for module, path in paths.items():
            path.write_text(originals[module])


def test_a_library_change_reruns_the_jobs_that_run_it_and_no_others(tiny):
    from headstart.pipeline.provenance import commented, planted_change

    jobs = planned_after_editing(
        tiny, {"heads/initial.py": planted_change}
    )  # the heads and what follows, not extraction
    assert {"heads_similarity", "heads_imprint", "heads_linear", "heads_random", "finetune", "table2"} <= set(jobs)
    assert not {"dataset", "split", "decode", "extract", "similarity_visual", "similarity_wordnet"} & set(jobs)
    jobs = planned_after_editing(
        tiny, {"report/statistics.py": planted_change}
    )  # the plotting code: figures and tables only
    assert jobs and set(jobs) <= {
        "curves",
        "fig_answer",
        "fig_answer_curves",
        "table_answer",
        "fig1",
        "fig2",
        "fig3",
        "table1",
        "table2",
        "table_init",
        "table_convergence",
        "table_linear",
        "top_sources",
    }
    # the Fashion-MNIST reader: the dataset stage, and by Snakemake's rules every job after it
    signature = "def read_idx(path: Path) -> np.ndarray:"
    jobs = planned_after_editing(
        tiny, {"data/sources.py": lambda text: text.replace(signature, signature + "\n    assert path")}
    )
    assert jobs.get("dataset") == 1 and {"split", "extract", "finetune"} <= set(jobs)
    # the ImageFolder reader (another source's), and a comment and a docstring in every module: nothing
    loop = 'for cls in tqdm(classes, desc="imagefolder classes", unit="class"):'
    assert (
        planned_after_editing(tiny, {"data/sources.py": lambda text: text.replace(loop, loop + "\n        assert cls")})
        == {}
    )
    library = tiny / "workflow/headstart"
    modules = sorted(path.relative_to(library).as_posix() for path in library.rglob("*.py"))
    assert len(modules) > 20 and planned_after_editing(tiny, dict.fromkeys(modules, commented)) == {}
    assert planned_jobs(snakemake(tiny, "-n", *TINY)) == {}  # restored: nothing to do


def test_changing_word_vectors_reruns_only_what_depends_on_them(tiny, tmp_path):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("coat 1 0\nshirt 0 1\n")
    override = tmp_path / "vectors.yaml"
    override.write_text(
        yaml.safe_dump(
            {
                "similarity": {
                    "measures": ["inference", "wordnet", "wordvec"],
                    "wordvec": {"vectors": str(vectors), "format": "glove_text"},
                }
            }
        )
    )
    jobs = planned_jobs(snakemake(tiny, "-n", "--configfile", "tests/data/tiny.yaml", str(override)))
    assert jobs.get("similarity_wordvec") == 1 and jobs.get("heads_similarity") == 1  # Fig. 3's, not a method
    assert not {"extract", "similarity_wordnet", "similarity_visual", "finetune", "split", "dataset"} & set(jobs)


def test_run_options_and_other_methods_do_not_rerun_finished_jobs(tiny, tmp_path):
    tiny_config = yaml.safe_load((ROOT / "tests/data/tiny.yaml").read_text())
    override = tmp_path / "override.yaml"
    # where and how jobs run: nothing to redo
    finetune = {**tiny_config["finetune"], "device": "cpu", "checkpoint_every": 3}
    override.write_text(yaml.safe_dump({"extract": {**tiny_config["extract"], "device": "cpu"}, "finetune": finetune}))
    jobs = planned_jobs(snakemake(tiny, "-n", "--configfile", "tests/data/tiny.yaml", str(override)))
    assert not {"decode", "extract", "finetune", "finetune_export", "export", "heads_similarity", "heads_linear"} & set(
        jobs
    )
    # a seed added: only its jobs (one per shot level)
    override.write_text(yaml.safe_dump({"finetune": {**tiny_config["finetune"], "seeds": [0, 1, 2]}}))
    result = snakemake(tiny, "-n", "--configfile", "tests/data/tiny.yaml", str(override))
    jobs = planned_jobs(result)
    assert jobs["finetune"] == jobs["finetune_export"] == 1  # the export's shot level keeps a candidate
    assert jobs["export"] == 1  # one more candidate to choose from
    assert set(re.findall(r"seed=(\d+)", result.stdout + result.stderr)) == {"2"}
    # a method added: every job trains it in lockstep with the others, so each (shot level, seed) reruns
    override.write_text(
        yaml.safe_dump(
            {"finetune": {**tiny_config["finetune"], "methods": [*tiny_config["finetune"]["methods"], "wordvec"]}}
        )
    )
    jobs = planned_jobs(snakemake(tiny, "-n", "--configfile", "tests/data/tiny.yaml", str(override)))
    assert jobs["finetune"] + jobs["finetune_export"] == 4
    # wordvec's heads are every shot level's, made for Fig. 3 already
    assert not {"decode", "extract", "heads_imprint", "heads_linear", "heads_similarity"} & set(jobs)


def test_adding_a_shot_level_runs_only_that_level(tiny, tmp_path):
    tiny_config = yaml.safe_load((ROOT / "tests/data/tiny.yaml").read_text())
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({"finetune": {**tiny_config["finetune"], "shots": [20, 5, 2]}}))
    result = snakemake(tiny, "-n", "--configfile", "tests/data/tiny.yaml", str(override))
    jobs = planned_jobs(result)
    assert jobs["similarity_visual"] == 1  # inference (and softmax) at 5 shots
    assert jobs["heads_similarity"] == 1  # inference's (wordnet's are every level's)
    assert jobs["heads_imprint"] == 1 and jobs["heads_linear"] == 2  # the probe and inference_prior
    assert jobs["finetune"] == len(tiny_config["finetune"]["seeds"])
    assert not {"dataset", "split", "decode", "extract", "similarity_wordnet", "similarity_wordvec"} & set(jobs)
    assert set(re.findall(r"shots=(\d+)", result.stdout + result.stderr)) == {"5"}


LAST_STAGE = f"{RUN}/last_stage"  # the last-stage preset's experiment
# the last-stage runs of the tests: one shot level, one seed, a few steps (the rules and both training modes,
# not the preset's scale)
SMALL_LAST_STAGE = {"shots": [20], "seeds": [0], "iterations": 10, "eval_every": 5}  # the tiny run evaluates at 10 too


def test_last_stage_preset_runs_end_to_end(tiny, tmp_path):
    """The last-stage preset (the paper's regime: the trainable last stage + head), on cached trunk
    activations and then on random crops as the paper (augment), on the tiny data, in a copy of the
    finished tiny run: only its new heads, fine-tuning and what follows run, into its own experiment
    directory; the second run reuses the first's heads and trains again."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny, repo, symlinks=True)
    trained = {}
    for augment in (False, True):
        override = tmp_path / "small.yaml"
        override.write_text(yaml.safe_dump({"finetune": {**SMALL_LAST_STAGE, "augment": augment}}))
        preset = ["--configfile", "tests/data/tiny.yaml", "workflow/presets/last_stage.yaml", str(override)]
        jobs = planned_jobs(snakemake(repo, "--cores", "2", *preset))
        assert jobs.get("finetune", 0) + jobs["finetune_export"] == 1 and not {"decode", "extract"} & set(jobs)
        if not augment:
            # inference, wordnet and word vectors, each at K = 1 and best
            assert jobs["heads_calibrated"] == 6
            # Co-Tuning: its relationship (the softmax matrix, not a measure of the tiny config, but made with
            # the inference one by the head-only run) and a start for the seed for each of its two
            # optimisers (cotuning, cotuning_adam)
            assert "similarity_visual" not in jobs and jobs["heads_cotuning"] == 2
        else:  # augment changes training only: the same heads
            assert not [rule for rule in jobs if rule.startswith(("heads", "similarity"))], jobs
        trained[augment] = check_last_stage_run(repo, tiny)
    # random crops train otherwise than the cached centre crops, from the same start
    assert not np.allclose(trained[False], trained[True])


def check_last_stage_run(repo, tiny) -> np.ndarray:
    """The checks of a last-stage run in ``repo`` (a copy of ``tiny``); returns its test F-scores at the last
    iteration, one per (method, k, shots, seed, class)."""
    curves = pd.read_parquet(repo / LAST_STAGE / "curves.parquet")
    assert read_metadata(repo / LAST_STAGE / "runs/shots20/seed0.parquet")["train"] == "last_stage"
    similarity = ["inference", "wordnet", "wordvec"]
    assert set(curves.groupby(["method", "k"]).groups) == {
        *[("random", "0"), ("imprint", "0"), ("probe", "0"), ("cotuning", "0"), ("cotuning_adam", "0")],
        *[(m + suffix, k) for m in similarity for suffix in ["", "_calibrated"] for k in ["1", "best"]],
        *[(m + "_prior", "best") for m in similarity],
    }
    # iteration 0 is the same initial network as in the head-only run (its runs of that shot level and seed);
    # training then differs
    head_only = pd.read_parquet(tiny / EXP / "curves.parquet")
    head_only = head_only[head_only["shots"].isin(SMALL_LAST_STAGE["shots"]) & head_only["seed"].isin([0])]
    keys = ["method", "k", "shots", "seed", "class_id"]
    end = SMALL_LAST_STAGE["iterations"]
    first = lambda c: c[c["iteration"] == 0].sort_values(keys).reset_index(drop=True)  # noqa: E731
    shared = curves[curves["method"].isin(head_only["method"].unique())]
    pd.testing.assert_frame_equal(first(shared), first(head_only))
    # Co-Tuning starts from the seed's random head (its source head only changes the loss)
    start_of = lambda m: first(curves[curves["method"] == m]).drop(columns=["method", "train_loss"])  # noqa: E731
    pd.testing.assert_frame_equal(start_of("cotuning"), start_of("random"))
    trained = curves[curves["iteration"] == end].groupby("method")["macro_f1"].mean()
    assert trained["cotuning"] != trained["random"]  # the source head's loss changes training
    last = lambda c: c[c["iteration"] == end].sort_values(keys)["train_loss"].to_numpy()  # noqa: E731
    assert len(last(head_only)) and not np.allclose(last(shared), last(head_only))  # the last stage trains too
    # a calibrated head predicts as its measure's head at iteration 0, with another confidence
    start = first(curves).set_index(keys)
    for m in similarity:
        plain = start.xs(m, level="method")
        calibrated = start.xs(m + "_calibrated", level="method")
        pd.testing.assert_series_equal(plain["fscore"], calibrated["fscore"])
        assert not np.allclose(plain["train_loss"], calibrated["train_loss"])
    for name in ["figures/fig1.png", "figures/fig3.png", "tables/table2.md", "tables/init.csv"]:
        assert (repo / LAST_STAGE / name).stat().st_size > 0
    init = pd.read_csv(repo / LAST_STAGE / "tables/init.csv")
    assert "Inference (visual), calibrated" in set(init["method"]) and len(init) == len(start.groupby(["method", "k"]))
    # the head-only experiment is untouched, and still complete
    assert planned_jobs(snakemake(repo, "-n", *TINY)) == {}
    return curves[curves["iteration"] == end].sort_values(keys)["fscore"].to_numpy()


def test_report_html(tiny):
    snakemake(tiny, *TINY, "--report", "report.html")
    html = (tiny / "report.html").read_text(errors="replace")
    assert "fig1.png" in html and "table2.csv" in html
    # each measure's top source classes per target class, and captions stating this run's settings
    for measure in ["inference", "wordnet", "wordvec"]:
        assert f"top_sources/{measure}.csv" in html or f'"name": "{measure}.csv"' in html
    assert "Similarity matrices" in html
    assert "(shot levels 20, 2)" in html and "K grid 1, 3, 10" in html and "<strong>fashion_mnist</strong>" in html
    table = pd.read_csv(tiny / EXP / "tables/top_sources/inference.csv")
    assert table.columns.tolist() == ["target", "#1", "#2", "#3", "#4", "#5"] and len(table) == 10


def test_lint_is_clean(tiny):
    result = snakemake(tiny, "--lint", *TINY, check=False)
    assert result.returncode == 0 and "Congratulations" in result.stdout + result.stderr, result.stdout + result.stderr


def test_config_typo_is_one_clear_line(tiny):
    result = snakemake(tiny, "-n", *TINY, "--config", "seed=abc", check=False)
    assert result.returncode != 0
    assert "headstart: invalid config: seed: 'abc' is not of type 'integer'" in result.stderr


def test_paper_preset_plans_the_expected_jobs(tmp_path):
    repo = copy_repository(tmp_path / "repo")
    preset = yaml.safe_load((repo / "workflow/presets/paper.yaml").read_text())
    (repo / preset["similarity"]["wordvec"]["vectors"]).parent.mkdir(parents=True)
    (repo / preset["similarity"]["wordvec"]["vectors"]).write_bytes(b"")  # the user's word2vec file
    # the docs' command, verbatim, as a dry run (`--configfile` takes several files: a target
    # after it would be read as a config file)
    command = next(
        line
        for line in (ROOT / "workflow/docs/paper.md").read_text().splitlines()
        if line.startswith(".venv/bin/snakemake") and "presets/paper.yaml" in line
    )
    jobs = planned_jobs(snakemake(repo, *shlex.split(command)[1:], "-n"))
    shots, seeds = preset["finetune"]["shots"], preset["finetune"]["seeds"]
    assert jobs == {
        "download_archive": 90,  # each synset's archive missing from tar_dir (the user sets one of the two)
        "model_weights": 1,
        "dataset": 1,
        "split": 1,
        "decode": 3,
        "source_head": 1,
        "extract": 1,
        "similarity_visual": len(shots),  # inference and softmax at once
        "similarity_wordnet": 1,
        "similarity_wordvec": 1,
        # similarity heads per shot level for the 2 visual measures (inference, softmax: both methods), once
        # for each of the 7 semantic ones (the same at every level); an imprint job, and a probe and an
        # inference_prior sweep per shot level; a Co-Tuning start per (shot level, seed); a random head per seed
        "heads_similarity": 2 * len(shots) + 7,
        "heads_imprint": len(shots),
        "heads_linear": 2 * len(shots),
        "heads_cotuning": len(shots) * len(seeds),
        "heads_random": len(seeds),
        "top_sources": 1,  # every measure's tables
        # one lockstep job per (shot level, seed); those of the largest level keep the export's candidate
        "finetune": (len(shots) - 1) * len(seeds),
        "finetune_export": len(seeds),
        "export": 1,
        "curves": 1,
        "fig_answer": 1,
        "fig_answer_curves": 1,
        "table_answer": 1,
        "fig1": 1,
        "fig2": 1,
        "fig3": 1,
        "table1": 1,
        "table2": 1,
        "table_init": 1,
        "table_convergence": 1,
        "table_linear": 1,  # the strength each linear head's sweep chose
    }
    assert len(seeds) == 3


def test_last_stage_preset_plans_its_runs_into_its_own_directory(tmp_path):
    """The README's last-stage command as a dry run on a fresh copy (that it reuses what the default
    built is test_last_stage_preset_runs_end_to_end's)."""
    repo = copy_repository(tmp_path / "repo")
    command = next(
        line
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith(".venv/bin/snakemake") and "presets/last_stage.yaml" in line
    )
    result = snakemake(repo, *shlex.split(command)[1:], "-n")
    preset = yaml.safe_load((repo / "workflow/presets/last_stage.yaml").read_text())["finetune"]
    jobs = planned_jobs(result)
    assert jobs["finetune"] + jobs["finetune_export"] == len(preset["shots"]) * len(preset["seeds"]) == 9
    assert jobs["heads_calibrated"] == 3 * 4  # 3 measures: K = 1 and best at 500 images, best at 10 and 1
    outputs = re.findall(r"^\s+output: (.*)$", result.stdout, flags=re.M)
    finetune = [o for o in outputs if "/runs/" in o or "/figures/" in o or "/tables/" in o]
    assert finetune and all(o.startswith(f"{RUN}/last_stage/") for o in finetune)
    # the last stage through the trunk's activations asks for extraction's memory and CPUs; the default's
    # head on cached features for 4 GB and one CPU (a node runs many)
    (threads, memory), *others = finetune_requests(result.stdout)  # 8 threads, as many as the machine has here
    assert not others and memory == "32000" and int(threads) == min(8, os.cpu_count())
    assert finetune_requests(snakemake(repo, "all", "-n").stdout) == {("1", "4000")}


def finetune_requests(planned: str) -> set[tuple[str, str]]:
    """The (threads, mem_mb) that a dry run's fine-tuning jobs ask for (no threads line: 1)."""
    blocks = re.findall(r"^rule finetune\w*:\n(.*?)(?=^\S|\Z)", planned, flags=re.M | re.S)
    threads = [re.search(r"threads: (\d+)", block) for block in blocks]
    memory = [re.search(r"mem_mb=(\d+)", block).group(1) for block in blocks]
    return {(t.group(1) if t else "1", m) for t, m in zip(threads, memory, strict=True)}


def test_a_missing_word_vector_file_is_an_error_on_every_run(tiny, tmp_path):
    override = tmp_path / "missing.yaml"
    override.write_text(
        yaml.safe_dump(
            {
                "similarity": {
                    "measures": ["inference", "wordnet", "wordvec"],
                    "wordvec": {"vectors": str(tmp_path / "nope.txt")},
                }
            }
        )
    )
    result = snakemake(tiny, "-n", "--configfile", "tests/data/tiny.yaml", str(override), check=False)
    assert result.returncode != 0  # older GloVe results exist: without the check, "Nothing to be done"
    message = f"headstart: invalid config: similarity.wordvec.vectors: {tmp_path / 'nope.txt'} is not a file"
    assert message in result.stderr


def test_a_part_the_network_lacks_is_one_line_before_the_first_job(tiny, tmp_path):
    override = tmp_path / "head.yaml"
    entry = yaml.safe_load((ROOT / "config.yaml").read_text())["models"]["efficientnet_lite0"]
    override.write_text(yaml.safe_dump({"models": {"efficientnet_lite0": {**entry, "head": "fc"}}}))
    result = snakemake(tiny, "-n", "--configfile", "tests/data/tiny.yaml", str(override), check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "headstart: invalid config: models.efficientnet_lite0: head 'fc' is not the last module" in result.stderr


def test_a_sentence_encoder_that_is_no_folder_is_an_error_before_the_first_job(tiny, tmp_path):
    override = tmp_path / "encoder.yaml"
    encoder = {"measures": ["inference", "wordnet", "sentence"], "sentence": {"encoder": str(tmp_path)}}
    override.write_text(yaml.safe_dump({"similarity": encoder}))
    result = snakemake(tiny, "-n", "--configfile", "tests/data/tiny.yaml", str(override), check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert (
        f"headstart: invalid config: similarity.sentence.encoder: {tmp_path} is neither a packaged encoder "
        "(all-minilm-l6-v2) nor a sentence-transformers model folder (no modules.json)"
    ) in result.stderr


FOLDER_WNIDS = ["n03057021", "n04133789"]  # coat, sandal


def imagefolder_repo(tmp_path, images_per_class: int, test_per_class: int):
    """A fresh repository and an ImageFolder of random JPEGs for two classes; (repo, root, override
    config, the generator that drew the images)."""
    repo = copy_repository(tmp_path / "repo")
    root = tmp_path / "folder"
    rng = np.random.default_rng(0)
    for wnid in FOLDER_WNIDS:
        (root / wnid).mkdir(parents=True)
        for i in range(images_per_class):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / wnid / f"{i}.jpg")
    override = tmp_path / "folder.yaml"
    dataset = {
        "name": "folder",
        "source": "imagefolder",
        "classes": [{"synset": w} for w in FOLDER_WNIDS],
        "imagefolder": {"root": str(root)},
    }
    split = {"train_per_class": 3, "val_per_class": 1, "test_per_class": test_per_class}
    override.write_text(yaml.safe_dump({"dataset": dataset, "split": split, "finetune": {"shots": [2]}}))
    return repo, root, override, rng


def test_changing_an_imagefolder_reruns_the_dataset_stage(tmp_path):
    repo, root, override, rng = imagefolder_repo(tmp_path, images_per_class=5, test_per_class=1)
    wnids = FOLDER_WNIDS
    args = ["results/folder/images.parquet", "--configfile", "tests/data/tiny.yaml", str(override)]
    snakemake(repo, "--cores", "1", *args)
    assert planned_jobs(snakemake(repo, "-n", *args)) == {}
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / wnids[0] / "new.jpg")
    assert planned_jobs(snakemake(repo, "-n", *args)) == {"dataset": 1}  # an image added
    snakemake(repo, "--cores", "1", *args)
    (root / wnids[1] / "0.jpg").unlink()
    assert planned_jobs(snakemake(repo, "-n", *args)) == {"dataset": 1}  # an image removed
    (root / wnids[1] / "1.jpg").unlink()  # one image fewer than the split needs: refused before any job
    refused = snakemake(repo, "-n", *args, check=False)
    assert refused.returncode != 0 and "has 3 image files" in refused.stderr and "the split needs 4" in refused.stderr
    for name in ("0.jpg", "1.jpg"):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / wnids[1] / name)
    snakemake(repo, "--cores", "1", *args)
    (root / "not_a_class").mkdir()  # a folder that is not one of dataset.classes: nothing to redo
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / "not_a_class" / "x.jpg")
    assert planned_jobs(snakemake(repo, "-n", *args)) == {}


def test_a_data_error_fails_once_with_one_line_and_the_skipped_images_in_the_log(tmp_path):
    """Not worth a retry: the job runs once, says why in one line, and its log names the skipped files."""
    repo, root, override, _ = imagefolder_repo(tmp_path, images_per_class=5, test_per_class=2)
    (root / "n04133789" / "0.jpg").write_bytes(b"broken")
    result = snakemake(
        repo,
        "--cores",
        "1",
        "results/folder/images.parquet",
        "--configfile",
        "tests/data/tiny.yaml",
        str(override),
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("Error in rule dataset") == 1 and "Trying to restart" not in output
    log = (repo / "results/logs/dataset/folder.log").read_text()
    assert "Traceback" not in log and "Traceback" not in result.stderr
    assert (
        "headstart: class n04133789 (sandal) has 2 usable train images, the config needs 3 (split.*_per_class); "
        "1 image was skipped (listed above in this log)"
    ) in log
    assert f"skipped {root}/n04133789/0.jpg: UnidentifiedImageError" in log


SHARED_STAGES = {
    "dataset",
    "split",
    "decode",
    "model_weights",
    "source_head",
    "extract",
    "similarity_wordnet",
    "similarity_wordvec",
    "heads_random",
}


def test_two_experiments_never_rerun_each_others_stages(tiny, tmp_path):
    """Issue 26.4: a second experiment with other shot levels, K and methods plans only its own jobs (and
    the shared stages of its new shot level); going back to the first plans nothing."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny, repo, symlinks=True)
    other = tmp_path / "other.yaml"
    finetune = {"methods": ["random", "inference"], "shots": [5], "seeds": [0], "k": ["best"]}
    other.write_text(yaml.safe_dump({"experiment": "other", "finetune": finetune}))
    second = ["--configfile", "tests/data/tiny.yaml", str(other)]
    result = snakemake(repo, "--cores", "2", *second)
    jobs = planned_jobs(result)
    assert not SHARED_STAGES & set(jobs)  # the decoded images and features are the dataset's
    # its own shot level's similarity and heads, nothing of the first experiment's levels
    assert set(re.findall(r"shots=(\d+)", result.stdout + result.stderr)) == {"5"}
    # inference's heads at 5 (WordNet's and word vectors' for its Fig. 3 are every level's, made already)
    assert jobs["similarity_visual"] == 1 and jobs["heads_similarity"] == 1 and jobs["finetune_export"] == 1
    assert (repo / RUN / "other/export/card.json").is_file()
    assert planned_jobs(snakemake(repo, "-n", *TINY)) == {}  # back to the first: nothing to do
    assert planned_jobs(snakemake(repo, "-n", *second)) == {}  # and to the second again


def test_a_code_change_that_alters_results_changes_the_curves(tiny, tmp_path):
    """Issue 26.1, as the user meets it: a change to the training code reruns the fine-tuning jobs and they
    train with the new code (their finished checkpoints are of the old code); reverting brings the first
    curves back, trained again."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny, repo, symlinks=True)
    curves = f"{EXP}/curves.parquet"
    before = pd.read_parquet(repo / curves)
    train = repo / "workflow/headstart/finetune/lockstep.py"
    original = train.read_text()
    changed = original.replace("lr=settings.lr,", "lr=settings.lr * 100,")
    assert changed != original
    train.write_text(changed)
    jobs = planned_jobs(snakemake(repo, "--cores", "2", curves, *TINY))
    assert jobs == {"finetune": 2, "finetune_export": 2, "curves": 1}
    log = (repo / "results/logs/finetune/fashion_mnist/efficientnet_lite0/head/shots2_seed0.log").read_text()
    assert "ignoring checkpoint" in log and "nothing to train" not in log
    after = pd.read_parquet(repo / curves)
    trained = lambda c: c[c["iteration"] > 0].reset_index(drop=True)  # noqa: E731
    assert not trained(after)["macro_f1"].equals(trained(before)["macro_f1"])
    train.write_text(original)
    snakemake(repo, "--cores", "2", curves, *TINY)
    pd.testing.assert_frame_equal(pd.read_parquet(repo / curves), before)


def test_the_export_follows_its_settings_and_reruns_only_the_export_level(tiny, tmp_path):
    """Issue 26.2 and 26.3: export.method after a complete run reruns the export's shot level only, and the
    exported classifier is of that method."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny, repo, symlinks=True)
    card = json.loads((repo / EXP / "export/card.json").read_text())
    method = "wordnet" if card["method"] != "wordnet" else "inference"
    override = tmp_path / "export.yaml"
    override.write_text(yaml.safe_dump({"export": {"method": method}}))
    result = snakemake(repo, "--cores", "2", *TINY, str(override))
    jobs = planned_jobs(result)  # (the rewritten curves of that level rerun the figures and tables)
    assert jobs["finetune_export"] == 2 and jobs["export"] == 1 and "finetune" not in jobs
    assert not SHARED_STAGES & set(jobs)
    assert json.loads((repo / EXP / "export/card.json").read_text())["method"] == method
