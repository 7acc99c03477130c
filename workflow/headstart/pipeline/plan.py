"""What the workflow runs and where its files go, from the parsed config (headstart.pipeline.config): the results
layout, the targets of `snakemake all`, the runs of each fine-tuning job, threads and memory, and the
files the dataset stage reads. The rules read it; workflow/rules/common.smk only wires it to Snakemake.

Layout under results/ (every experiment on a dataset and model shares what comes before its folder):

    {dataset}/                         images, split, pixels ({dataset}/pixels/resize{R}_crop{C}/)
    {dataset}/{model}/                 extraction, similarities, K grids, heads
    {dataset}/{model}/{experiment}/    fine-tuning runs, curves, figures, tables, export
    models/{model}/                    the source model's weights, head and class list
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

from ..core.vocabulary import (
    FASHION_MNIST_FILES,
    VISUAL_MEASURES,
    Method,
    fashion_mnist_local,
    local_archive,
)
from .config import Config

SPLITS = ("train", "val", "test")
FIGURES = ("answer", "answer_curves", "fig1", "fig2", "fig3")
TABLES = ("answer", "table1", "table2", "init", "convergence")
TABLE_FORMATS = ("csv", "md", "tex")


def log_file(rule: str, *parts: str) -> str:
    """results/logs/{rule}/{parts}.log: one log tree for every rule (SLURM's logs under results/logs/slurm)."""
    return os.path.join("results", "logs", rule, *parts) + ".log"


def benchmark_file(rule: str, *parts: str) -> str:
    """results/benchmarks/{rule}/{parts}.tsv: one tree of Snakemake's per-job time and memory records."""
    return os.path.join("results", "benchmarks", rule, *parts) + ".tsv"


@dataclass(frozen=True)
class Plan:
    config: Config

    # --- folders

    @property
    def data(self) -> str:
        return f"results/{self.config.data.name}"

    @property
    def run(self) -> str:
        return f"{self.data}/{self.config.model.name}"

    @property
    def pixels(self) -> str:
        """The decoded crops: the dataset's, shared by every model and experiment of that preprocessing."""
        return f"{self.data}/pixels/resize{self.config.preprocess.resize}_crop{self.config.preprocess.crop}"

    @property
    def models(self) -> str:
        """The source model's head and class list, shared by every dataset."""
        return f"results/models/{self.config.model.name}"

    @property
    def exp(self) -> str:
        """One fine-tuning setup's runs, curves, figures and tables; everything before it is shared."""
        return f"{self.run}/{self.config.experiment}"

    # --- the methods and measures a run has

    @cached_property
    def linear(self) -> list[str]:
        """The heads fitted by the linear sweep (headstart.heads.initial.linear_sweep): the probe and the priors."""
        return ["probe", *[m.name for m in self.config.finetune.methods if m.suffix == "_prior"]]

    @cached_property
    def calibrated(self) -> list[str]:
        return [m.name for m in self.config.finetune.methods if m.suffix == "_calibrated"]

    # --- files

    def sim_file(self, measure: str, shots: int | str | None) -> str:
        """A similarity matrix: a visual one per shot level (from its images), a semantic one once."""
        if measure in VISUAL_MEASURES:
            return f"{self.run}/sim/{measure}_shots{shots}.parquet"
        return f"{self.run}/sim/{measure}.parquet"

    @staticmethod
    def similarity_level(measure: str, shots: int | str) -> str:
        """The shot level a measure's similarity heads and K grid belong to: a visual measure's own, while a
        semantic measure's are the same at every level ('all_shots'), computed once and shared by all."""
        return f"shots{shots}" if measure in VISUAL_MEASURES else "all_shots"

    def kgrid_file(self, measure: str, shots: int | str, suffix: str = ".parquet") -> str:
        """A measure's K grid on validation (suffix '_best_k.json': the best K per class type it picked)."""
        return f"{self.run}/kgrid/{measure}/{self.similarity_level(measure, shots)}{suffix}"

    def head_file(self, method: str, k: str, shots: int | str, seed: int | str | None) -> str:
        """The initial head of one run: the random head is drawn per seed (so its confidence interval at
        iteration 0 is real), and Co-Tuning's target head is that seed's random head; a semantic measure's
        top-K head is the same at every shot level; every other head belongs to a shot level."""
        if method == "random":
            return f"{self.run}/heads/random/k0/seed{seed}.safetensors"
        if Method(method).is_cotuning:  # it holds the experiment's trade-off (finetune.cotuning_trade_off)
            return f"{self.exp}/heads/{method}/k0/shots{shots}_seed{seed}.safetensors"
        if method in self.config.similarity.measures:
            return f"{self.run}/heads/{method}/k{k}/{self.similarity_level(method, shots)}.safetensors"
        return f"{self.run}/heads/{method}/k{k}/shots{shots}.safetensors"

    def job_heads(self, shots: int | str, seed: int | str) -> list[str]:
        """The initial heads of every run of one fine-tuning job."""
        return [self.head_file(method, k, shots, seed) for method, k in self.config.finetune.job_runs(shots)]

    def untrained_heads(self, seed: int | str) -> list[str]:
        """The heads export.shots 0 chooses among: the untrained heads that need no image."""
        largest = self.config.finetune.largest_shot
        return [self.head_file(run.method, run.k, largest, seed) for run in self.config.export_runs(0)]

    def curves_file(self, shots: int | str, seed: int | str) -> str:
        """One fine-tuning job's curves (every run of a shot level and seed)."""
        return f"{self.exp}/runs/shots{shots}/seed{seed}.parquet"

    def candidate_file(self, shots: int | str, seed: int | str) -> str:
        """One seed's candidate for export: its selected run's weights."""
        return f"{self.exp}/runs/shots{shots}/seed{seed}.selected.safetensors"

    # --- what `all` builds

    def all_curves(self) -> list[str]:
        finetune = self.config.finetune
        return [self.curves_file(shots, seed) for shots in finetune.shots for seed in finetune.seeds]

    def all_similarities(self) -> list[str]:
        shots = self.config.finetune.shots
        return [
            self.sim_file(m, s)
            for m in self.config.similarity.measures
            for s in (shots if m in VISUAL_MEASURES else [None])
        ]

    def best_k_files(self) -> list[str]:
        """The best K per class type of each measure a fine-tuned method uses, at every shot level."""
        finetune = self.config.finetune
        measures = {m.measure for m in finetune.methods if not m.is_baseline}
        return sorted({self.kgrid_file(m, n, "_best_k.json") for m in measures for n in finetune.shots})

    def linear_sweeps(self) -> list[str]:
        """The L2 sweeps of the linear heads fine-tuned, at every shot level."""
        methods = self.config.finetune.method_names
        return [
            f"{self.run}/heads/{m}/k{'0' if m == 'probe' else 'best'}/shots{n}_sweep.parquet"
            for m in self.linear
            if m in methods
            for n in self.config.finetune.shots
        ]

    def all_targets(self) -> list[str]:
        measures, exp = self.config.similarity.measures, self.exp
        linear = set(self.linear) & set(self.config.finetune.method_names)
        return [
            f"{self.data}/manifest.parquet",
            f"{self.data}/classes.parquet",
            *self.all_similarities(),
            *[self.kgrid_file(m, self.config.finetune.largest_shot) for m in measures],
            f"{exp}/curves.parquet",
            f"{exp}/export/card.json",
            *[f"{exp}/figures/{fig}.{ext}" for fig in FIGURES for ext in ("png", "pdf")],
            *[f"{exp}/tables/{table}.{ext}" for table in TABLES for ext in TABLE_FORMATS],
            *[f"{exp}/tables/top_sources/{m}.csv" for m in measures],
            *([f"{exp}/tables/linear_c.{ext}" for ext in TABLE_FORMATS] if linear else []),
        ]

    # --- resources

    @property
    def finetune_threads(self) -> int:
        """One thread for a head on cached features, so jobs run side by side; every other mode runs
        convolutions (or feeds a GPU), as extraction does."""
        return 1 if self.config.finetune.on_cached_features else 8

    @property
    def finetune_mem_mb(self) -> int:
        """A head on cached features holds the features and its runs' heads (0.86 GB at 500 images per class,
        measured): 4 GB, so that a node runs many; every other mode holds a trunk's activations or a batch
        of crops through it, as extraction does (32 GB, as there)."""
        return 4000 if self.config.finetune.on_cached_features else 32000

    # --- what the dataset stage reads

    def dataset_inputs(self) -> list[str]:
        """Files the dataset stage reads, so that editing an image list, or adding, removing or replacing an
        ImageFolder class's image, reruns it (and no other stage)."""
        data = self.config.data
        files = []
        if data.source == "imagenet21k":
            files += [data.source_options["train_list"], data.source_options["test_list"]]
        if isinstance(data.options.get("classes"), str):
            files.append(data.options["classes"])
        if data.source == "imagefolder":
            from ..data.classes import dataset_classes  # only here: it imports NLTK (1.5 s)
            from ..data.sources import imagefolder_files

            root = data.source_options["root"]
            for target in dataset_classes(data.options):
                files += [str(path) for path in imagefolder_files(root, target.folder)]
        return files

    def wordvec_inputs(self) -> list[str]:
        """A word-vector file given by path is an input: replacing it reruns the wordvec matrix."""
        vectors = self.config.similarity.wordvec["vectors"]
        return [] if vectors == "glove-6b-50d" else [vectors]

    def download_targets(self) -> list[str]:
        """The files the dataset stage needs from the network (none when they are local): fetched by the
        download rules, on the submitting host."""
        data = self.config.data
        if data.source == "fashion_mnist":
            if fashion_mnist_local(data.source_options.get("local_dir")):
                return []
            return [f"{self.data}/downloads/{name}" for name in FASHION_MNIST_FILES]
        if data.source == "imagenet21k":
            from ..data.classes import dataset_classes  # only here: it imports NLTK (1.5 s)

            tar_dir = data.source_options.get("tar_dir")
            return [
                f"{self.data}/downloads/{target.wnid}.tar"
                for target in dataset_classes(data.options)
                if not local_archive(target.wnid, tar_dir)
            ]
        return []
