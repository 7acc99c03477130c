# Dataset download / ingestion and the split into train, val and test with nested shot subsets.


rule dataset:
    input:
        dataset_inputs,
    output:
        inventory=f"{DATA}/images.parquet",
        report=f"{DATA}/images_report.tsv",
    params:
        dataset=config["dataset"],
        split=config["split"],
        seed=config["seed"],
    log:
        f"{DATA}/logs/dataset.log",
    benchmark:
        f"{DATA}/benchmarks/dataset.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/dataset.py"


rule split:
    input:
        inventory=f"{DATA}/images.parquet",
    output:
        manifest=f"{DATA}/manifest.parquet",
        classes=f"{DATA}/classes.parquet",
    params:
        classes=config["dataset"]["classes"],
        split=config["split"],
        seed=config["seed"],
    log:
        f"{DATA}/logs/split.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/split.py"


rule decode:
    input:
        manifest=f"{DATA}/manifest.parquet",
    output:
        pixels=f"{PIXELS}/{{split}}.safetensors",
    params:
        preprocess=config["preprocess"],
        largest_shot=lambda wildcards: LARGEST_SHOT if wildcards.split == "train" else 0,
    retries: 2  # a long job a kill can end (preemption, time limit, OOM); it restarts cleanly
    log:
        f"{PIXELS}/logs/decode_{{split}}.log",
    benchmark:
        f"{PIXELS}/benchmarks/decode_{{split}}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/decode.py"
