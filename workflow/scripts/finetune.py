"""Snakemake glue: fine-tune one (method, K, shot level) for each seed, resuming from checkpoints."""

import copy
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from headstart.logs import setup_logging
from headstart.models import load_source_model, normalization, pick_device, split_model
from headstart.split import labelled
from headstart.tables import read_tensors, write_parquet
from headstart.train import Classifier, ImageInputs, TensorInputs, TrainSettings, finetune

log = setup_logging(snakemake.log[0])
wc, params = snakemake.wildcards, snakemake.params
options = params.finetune
run_options = snakemake.config["finetune"]  # where and how: not params, so changing them reruns nothing
device = pick_device(run_options["device"])
head, _ = read_tensors(snakemake.input.head)
manifest, classes = pd.read_parquet(snakemake.input.manifest), pd.read_parquet(snakemake.input.classes)
train_cache, train_meta = read_tensors(snakemake.input.features_train)
test_cache, test_meta = read_tensors(snakemake.input.features_test)
train_rows = labelled(train_meta["image_ids"], manifest, classes)
test_rows = labelled(test_meta["image_ids"], manifest, classes)
subset = (train_rows["rank"] < int(wc.shots)).to_numpy()
train_labels, test_labels = train_rows["label"].to_numpy()[subset], test_rows["label"].to_numpy()
wnids = classes["wnid"].tolist()

cached = not options["augment"] and (options["train"] == "head" or "trunk" in train_cache)
# A head on cached features is a handful of small matmuls: more threads only add overhead.
torch.set_num_threads(1 if cached and options["train"] == "head" else snakemake.threads)
if cached:  # the frozen part was computed once by the extract rule
    key = "features" if options["train"] == "head" else "trunk"
    train_inputs, test_inputs = TensorInputs(train_cache[key][torch.tensor(subset)]), TensorInputs(test_cache[key])
    parts = None
    if options["train"] == "last_stage":
        entry = params.entry
        parts = split_model(load_source_model(entry), entry["trainable"], entry["head"])
    log.info("training on cached %s (%s)", key, tuple(train_inputs.tensor.shape))
else:
    entry = params.entry
    model = load_source_model(entry)
    mean, std = normalization(model, entry)
    parts = split_model(model, entry["trainable"], entry["head"])
    path_of = manifest.set_index("image_id")["path"]
    paths = path_of.loc[train_rows["image_id"][subset]].tolist()
    test_paths = path_of.loc[test_rows["image_id"]].tolist()
    size = (params.preprocess["resize"], params.preprocess["crop"], mean, std)
    num_workers = min(snakemake.config["extract"]["num_workers"], snakemake.threads)  # loaders share the job's CPUs
    loading = {"num_workers": num_workers, "pin_memory": device.type == "cuda"}
    train_inputs = ImageInputs(paths, *size, augment=options["augment"], **loading)
    test_inputs = ImageInputs(test_paths, *size, augment=False, **loading)
    log.info("training through the frozen trunk on %d images", len(paths))


def build_classifier() -> Classifier:
    weight, bias = head["weight"].numpy(), head["bias"].numpy()
    if cached and options["train"] == "head":
        return Classifier(nn.Identity(), nn.Identity(), weight, bias, options["dropout"])
    if cached:
        return Classifier(nn.Identity(), copy.deepcopy(parts.trainable).train(), weight, bias, options["dropout"])
    if options["train"] == "head":
        return Classifier(nn.Sequential(parts.trunk, parts.trainable), nn.Identity(), weight, bias, options["dropout"])
    trainable = copy.deepcopy(parts.trainable)
    for parameter in trainable.parameters():
        parameter.requires_grad_(True)
    return Classifier(parts.trunk, trainable, weight, bias, options["dropout"])


optimizer = options["optimizer"]
for seed, curve_path in zip(params.seeds, snakemake.output.curves):
    settings = TrainSettings(iterations=options["iterations"], eval_every=options["eval_every"],
                             checkpoint_every=run_options["checkpoint_every"], batch_size=options["batch_size"],
                             dropout=options["dropout"], lr=optimizer["lr"], betas=tuple(optimizer["betas"]),
                             eps=optimizer["eps"], seed=seed)
    checkpoint = Path(curve_path).with_name("checkpoint.pt")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    signature = {"method": wc.method, "k": wc.k, "shots": int(wc.shots), "train": options["train"],
                 "augment": options["augment"]}
    curve = finetune(build_classifier(), train_inputs, train_labels, test_inputs, test_labels, wnids, settings, device,
                     checkpoint=checkpoint, signature=signature,
                     progress=f"{wc.method} k{wc.k} {wc.shots}-shot seed {seed}")
    write_parquet(curve, curve_path, {**signature, "seed": seed, "settings": options})
    checkpoint.unlink(missing_ok=True)
    first, best = curve.loc[curve["iteration"] == 0, "macro_f1"].iloc[0], curve["macro_f1"].max()
    log.info("%s k%s %s shots seed %d: macro F1 first %.3f best %.3f", wc.method, wc.k, wc.shots, seed, first, best)
