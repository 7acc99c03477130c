"""The fine-tuning job, per training mode: real EfficientNet-Lite0, decoded images, extracted caches."""

import os
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from headstart.core.tables import read_metadata, read_tensors, write_tensors
from headstart.data.pixels import decode_images
from headstart.data.split import imagenet1k_wnids
from headstart.extract.features import CentreCrops, SplitOutputs, extract_split
from headstart.extract.models import load_source_model, normalization, save_source_weights, split_model
from headstart.finetune.job import FinetuneError, JobFiles, finetune_job, job_settings
from headstart.heads.headfile import write_head
from headstart.heads.initial import xavier_head

from conftest import ROOT
from test_train import write_images

LITE0 = yaml.safe_load((ROOT / "config.yaml").read_text())["models"]["efficientnet_lite0"]
CPU = torch.device("cpu")
PREPROCESS = {"resize": 40, "crop": 32}
OPTIONS = {
    "iterations": 4,
    "eval_every": 2,
    "batch_size": 3,
    "dropout": 0.5,
    "optimizer": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8},
}


@pytest.fixture(scope="module")
def job_inputs(tmp_path_factory):
    """Three classes, 4 train images each (ranks 0-3), 2 validation and 2 test images each; caches and 3 heads."""
    root = tmp_path_factory.mktemp("job")
    classes = pd.DataFrame({"class_id": ["n1", "n2", "n3"], "name": ["a", "b", "c"]})
    paths = write_images(root, [(28, 28, 1), (30, 26, 3), (26, 34, 3)] * 8)
    rows = []
    for i, path in enumerate(paths):
        split, first = ("train", 0) if i < 12 else ("test", 12) if i < 18 else ("val", 18)
        rows.append(
            {
                "image_id": f"img{i}",
                "path": path,
                "class_id": classes["class_id"][i % 3],
                "split": split,
                "rank": (i - first) // 3,
            }
        )
    manifest = pd.DataFrame(rows)
    save_source_weights(LITE0, root / "weights.safetensors", "efficientnet_lite0")
    model = load_source_model(LITE0)
    mean, std = normalization(model, LITE0)
    parts = split_model(model, LITE0["trainable"], LITE0["head"])
    for split in ["train", "val", "test"]:
        chosen = manifest[manifest["split"] == split]
        decode_images(
            chosen["path"].tolist(),
            chosen["image_id"].tolist(),
            root / f"pixels_{split}.safetensors",
            PREPROCESS["resize"],
            PREPROCESS["crop"],
            centre_crop=split != "train",
        )
        extract_split(
            parts,
            root / f"pixels_{split}.safetensors",
            CentreCrops(PREPROCESS["crop"], mean, std, 4, CPU),
            imagenet1k_wnids(),
            SplitOutputs(root / f"logits_{split}.parquet", root / f"features_{split}.safetensors"),
        )
    heads = []
    for method, k, seed in [("random", "0", 0), ("inference", "1", 1), ("wordnet", "best", 2)]:
        weight, bias = xavier_head(3, parts.head.in_features, seed)
        heads.append(root / f"{method}_{k}.safetensors")
        write_head(heads[-1], {"weight": weight, "bias": bias}, method, k, classes["class_id"].tolist())
    return root, manifest, classes, heads


def files(root, heads, curves, features=None, selected=None) -> JobFiles:
    """The job's files: inputs in ``root`` (the features in ``features`` when given), curves at ``curves``."""
    features = features or root
    return JobFiles(
        heads=heads,
        features_train=features / "features_train.safetensors",
        features_test=features / "features_test.safetensors",
        features_val=features / "features_val.safetensors",
        pixels_train=root / "pixels_train.safetensors",
        weights=root / "weights.safetensors",
        curves=curves,
        selected=selected,
    )


def settings(options, seed=5, cache_key="", export=None):
    return job_settings(options, seed, 1, LITE0, PREPROCESS, CPU, cache_key, export)


def job(job_inputs, train: str, augment: bool, heads=None, name="curves", shots=3) -> pd.DataFrame:
    root, manifest, classes, all_heads = job_inputs
    options = {**OPTIONS, "train": train, "augment": augment}
    return finetune_job(
        files(root, heads or all_heads, root / f"{name}.parquet"), manifest, classes, shots, settings(options)
    )


@pytest.mark.parametrize(
    "train,augment", [("head", False), ("head", True), ("last_stage", False), ("last_stage", True)]
)
def test_each_mode_trains_every_run_of_the_job(job_inputs, train, augment):
    curves = job(job_inputs, train, augment, name=f"{train}_{augment}")
    root = job_inputs[0]
    assert pd.read_parquet(root / f"{train}_{augment}.parquet").equals(curves)
    # the checkpoint keeps only the finished curves: no weights
    assert torch.load(root / f"{train}_{augment}.checkpoint.pt", weights_only=True)["runs"] == {}
    assert read_metadata(root / f"{train}_{augment}.parquet")["runs"] == ["random/k0", "inference/k1", "wordnet/kbest"]
    runs = curves.groupby(["method", "k"])
    assert set(runs.groups) == {("random", "0"), ("inference", "1"), ("wordnet", "best")}
    assert (curves["shots"] == 3).all() and (curves["seed"] == 5).all()
    assert sorted(curves["iteration"].unique()) == [0, 2, 4]
    assert curves.groupby(["method", "iteration"]).size().eq(3).all()  # one row per class
    # iteration 0 is the initial head on the pretrained network, whatever the mode
    first = curves[curves["iteration"] == 0].set_index(["method", "class_id"])["fscore"].sort_index()
    reference = job_inputs_first(job_inputs)
    pd.testing.assert_series_equal(first, reference)
    # the heads learn (the loss of the last evaluation window is finite and differs between runs)
    last = curves[curves["iteration"] == 4].groupby("method")["train_loss"].first()
    assert np.isfinite(last).all() and last.nunique() == 3


_FIRST = {}


def job_inputs_first(job_inputs) -> pd.Series:
    if "first" not in _FIRST:
        curves = job(job_inputs, "head", False, name="reference")
        _FIRST["first"] = curves[curves["iteration"] == 0].set_index(["method", "class_id"])["fscore"].sort_index()
    return _FIRST["first"]


def test_paper_mode_lockstep_equals_each_run_alone(job_inputs):
    together = job(job_inputs, "last_stage", True, name="together")
    heads = job_inputs[3]
    for head in heads[1:]:
        alone = job(job_inputs, "last_stage", True, heads=[head], name="alone")
        name = alone["method"].iloc[0]
        pd.testing.assert_frame_equal(together[together["method"] == name].reset_index(drop=True), alone)


def test_random_crops_change_training_but_not_evaluation(job_inputs):
    cropped = job(job_inputs, "last_stage", True, name="cropped")
    cached = job(job_inputs, "last_stage", False, name="cached")
    loss = lambda c: c[c["iteration"] == 2].groupby("method")["train_loss"].first()  # noqa: E731
    assert not np.allclose(loss(cropped), loss(cached))
    pd.testing.assert_frame_equal(cropped[cropped["iteration"] == 0], cached[cached["iteration"] == 0])


def test_last_stage_without_trunk_activations_says_what_to_change(job_inputs, tmp_path):
    root, manifest, classes, heads = job_inputs
    write_tensors(
        {"features": np.zeros((6, 4), np.float32)},
        tmp_path / "features_test.safetensors",
        {"image_ids": [f"img{i}" for i in range(12, 18)]},
    )
    with pytest.raises(FinetuneError, match="no 'trunk' tensor.*extract.trunk_activations"):
        finetune_job(
            replace(files(root, heads, tmp_path / "c.parquet"), features_test=tmp_path / "features_test.safetensors"),
            manifest,
            classes,
            3,
            settings({**OPTIONS, "train": "last_stage", "augment": True}, seed=0),
        )


def test_bf16_activations_from_a_gpu_train_on_a_cpu(job_inputs, tmp_path):
    root, manifest, classes, heads = job_inputs
    for split in ["train", "val", "test"]:  # the cache as extraction on CUDA writes it: trunk activations in bf16
        tensors, meta = read_tensors(root / f"features_{split}.safetensors")
        write_tensors(
            {"trunk": tensors["trunk"].to(torch.bfloat16), "features": tensors["features"]},
            tmp_path / f"features_{split}.safetensors",
            meta,
        )
    curves = finetune_job(
        files(root, heads, tmp_path / "c.parquet", features=tmp_path),
        manifest,
        classes,
        3,
        settings({**OPTIONS, "train": "last_stage", "augment": False}, seed=0),
    )
    assert np.isfinite(curves.dropna()["train_loss"]).all()


def test_a_checkpoint_of_other_heads_is_not_resumed(job_inputs, tmp_path, caplog, monkeypatch):
    import headstart.finetune.job as finetune_module

    root, manifest, classes, heads = job_inputs
    options = {**OPTIONS, "train": "head", "augment": False, "iterations": 6}

    def run(head_files):
        return finetune_job(files(root, head_files, tmp_path / "c.parquet"), manifest, classes, 3, settings(options, 0))

    copied = [tmp_path / head.name for head in heads]
    for head, copy in zip(heads, copied, strict=True):
        copy.write_bytes(head.read_bytes())
    clean = run(copied)

    def killed(*args, **kwargs):  # the job dies at iteration 3, after the checkpoint of iteration 2
        finetune_module.__dict__["_train"](*args, **{**kwargs, "options": replace(kwargs["options"], stop_at=3)})
        raise KeyboardInterrupt

    monkeypatch.setitem(finetune_module.__dict__, "_train", finetune_module.train_lockstep)
    monkeypatch.setattr(finetune_module, "train_lockstep", killed)
    with pytest.raises(KeyboardInterrupt):
        run(copied)
    monkeypatch.setattr(finetune_module, "train_lockstep", finetune_module.__dict__["_train"])
    assert (tmp_path / "c.checkpoint.pt").exists()
    tensors, meta = read_tensors(copied[0])  # the random head, regenerated with other values
    write_tensors({"weight": tensors["weight"] * 2, "bias": tensors["bias"]}, copied[0], meta)
    with caplog.at_level("WARNING", logger="headstart"):
        rerun = run(copied)
    assert "ignoring checkpoint" in caplog.text
    pd.testing.assert_frame_equal(rerun, run(copied))
    assert not rerun.equals(clean)


def test_a_job_killed_after_its_curves_were_written_rewrites_them_without_training(job_inputs, caplog):
    """A time limit hit right after the curves are written: Snakemake deletes them and retries; the
    retry finds the finished curves in the checkpoint (a few kB, no weights) and trains nothing."""
    root = job_inputs[0]
    curves = job(job_inputs, "head", False, name="limit")
    checkpoint = root / "limit.checkpoint.pt"
    state = torch.load(checkpoint, weights_only=True)
    assert state["runs"] == {} and state["iteration"] == OPTIONS["iterations"] and checkpoint.stat().st_size < 50_000
    (root / "limit.parquet").unlink()  # what Snakemake does to the output of a job it marks failed
    with caplog.at_level("INFO", logger="headstart"):
        again = job(job_inputs, "head", False, name="limit")
    assert "holds the finished curves (iteration 4): nothing to train" in caplog.text
    assert set(re.findall(r"(\d+)/4 \[", caplog.text)) == {"4"}  # the bar starts at the end: no step ran
    pd.testing.assert_frame_equal(again, curves)
    pd.testing.assert_frame_equal(pd.read_parquet(root / "limit.parquet"), curves)


def test_a_second_live_attempt_waits_for_the_first(tmp_path, caplog):
    """The second attempt takes the lock only once the first lets go, however fast the machine: the first
    (another process) holds it until the test tells it to stop."""
    import socket
    import subprocess
    import sys
    import threading
    import time

    from headstart.finetune.job import attempt_lock

    lock = tmp_path / "seed0.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys\n"
            f"h = open({str(lock)!r}, 'a+'); fcntl.flock(h, fcntl.LOCK_EX); h.write('pid 1 on node7\\n'); h.flush()\n"
            "print('locked', flush=True); sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    acquired = threading.Event()

    def second_attempt():
        with attempt_lock(lock):
            acquired.set()

    thread = threading.Thread(target=second_attempt, daemon=True)
    with caplog.at_level("WARNING", logger="headstart"):
        thread.start()
        deadline = time.monotonic() + 120  # a hang guard, not a speed limit
        while "another attempt of this job holds" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "another attempt of this job holds" in caplog.text and "pid 1 on node7" in caplog.text
        assert not acquired.is_set()  # it waits while the other attempt holds the lock
        holder.stdin.write("release\n")
        holder.stdin.flush()
        thread.join(timeout=120)
    holder.wait(timeout=120)
    assert acquired.is_set()
    assert lock.read_text() == f"pid {os.getpid()} on {socket.gethostname()}\n"  # the second attempt's line


def test_every_attempt_keeps_its_log(tmp_path):
    from headstart.core.logs import setup_logging

    log_file = tmp_path / "job.log"
    setup_logging(log_file, keep_attempts=True).info("first attempt")
    log_file.unlink()  # what Snakemake does to a job's log before it runs the job again
    setup_logging(log_file, keep_attempts=True).info("second attempt")
    assert "first attempt" not in log_file.read_text() and "second attempt" in log_file.read_text()
    text = (tmp_path / "job.attempts.log").read_text()
    assert text.count("--- attempt: pid") == 2 and "first attempt" in text and "second attempt" in text


def test_a_finished_checkpoint_of_other_code_or_settings_is_not_handed_back(job_inputs, tmp_path, caplog):
    """Issue 26.1: a code change (another job key) that changes the result retrains; going back to the first
    key retrains again (no state of the second key is mistaken for the first's)."""
    root, manifest, classes, heads = job_inputs
    base = {**OPTIONS, "train": "head", "augment": False}
    faster = {**base, "optimizer": {**base["optimizer"], "lr": 0.1}}
    out = files(root, heads, tmp_path / "c.parquet")
    first = finetune_job(out, manifest, classes, 3, settings(base, cache_key="code-a"))
    with caplog.at_level("INFO", logger="headstart"):
        changed = finetune_job(out, manifest, classes, 3, settings(faster, cache_key="code-b"))
    assert "ignoring checkpoint" in caplog.text and "nothing to train" not in caplog.text
    assert not changed.equals(first)  # the new code's curves, not the finished checkpoint's
    caplog.clear()
    with caplog.at_level("INFO", logger="headstart"):
        again = finetune_job(out, manifest, classes, 3, settings(base, cache_key="code-a"))
    assert "ignoring checkpoint" in caplog.text
    pd.testing.assert_frame_equal(again, first)
    # the same key and settings: the finished checkpoint is the job's own, nothing is trained
    caplog.clear()
    with caplog.at_level("INFO", logger="headstart"):
        finetune_job(out, manifest, classes, 3, settings(base, cache_key="code-a"))
    assert "nothing to train" in caplog.text


def test_the_export_candidate_follows_the_export_settings(job_inputs, tmp_path):
    """Issue 26.2: after a job kept the best of every run, asking for one method keeps that method's run."""
    from headstart.core.tables import read_tensor_metadata

    root, manifest, classes, heads = job_inputs
    options = {**OPTIONS, "train": "head", "augment": False}
    out = files(root, heads, tmp_path / "c.parquet", selected=tmp_path / "c.selected.safetensors")
    finetune_job(out, manifest, classes, 3, settings(options))
    chosen = read_tensor_metadata(out.selected)["method"]
    other = next(method for method in ("random", "inference", "wordnet") if method != chosen)
    finetune_job(out, manifest, classes, 3, settings(options, export={"method": other}))
    assert read_tensor_metadata(out.selected)["method"] == other
    with pytest.raises(FinetuneError, match="no run of this job is method probe"):
        finetune_job(out, manifest, classes, 3, settings(options, export={"method": "probe"}))


def test_a_job_that_keeps_nothing_resumes_the_finished_checkpoint_of_one_that_kept(job_inputs, tmp_path, caplog):
    """The export moved to another shot level: this level's jobs keep nothing now, and their curves are the
    same, so their finished checkpoints are theirs (nothing retrains)."""
    root, manifest, classes, heads = job_inputs
    options = {**OPTIONS, "train": "head", "augment": False}
    kept = finetune_job(
        files(root, heads, tmp_path / "c.parquet", selected=tmp_path / "c.selected.safetensors"),
        manifest,
        classes,
        3,
        settings(options),
    )
    with caplog.at_level("INFO", logger="headstart"):
        plain = finetune_job(files(root, heads, tmp_path / "c.parquet"), manifest, classes, 3, settings(options))
    assert "nothing to train" in caplog.text
    pd.testing.assert_frame_equal(plain, kept)
