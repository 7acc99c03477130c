# Dataset download / ingestion and the split into train, val and test with nested shot subsets.


rule dataset:
    input:
        dataset_inputs,
    output:
        inventory=f"{DATA}/images.parquet",
        report=f"{DATA}/images_report.tsv",
    params:
        code=library_code("dataset"),  # reruns the job when the library code it runs changes
        dataset=config["dataset"],
        split=config["split"],
        seed=config["seed"],
    log:
        log_file("dataset", DATASET),
    benchmark:
        benchmark_file("dataset", DATASET)
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
        code=library_code("split"),  # reruns the job when the library code it runs changes
        classes=config["dataset"]["classes"],
        split=config["split"],
        seed=config["seed"],
    log:
        log_file("split", DATASET),
    benchmark:
        benchmark_file("split", DATASET)
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
        code=library_code("decode"),  # reruns the job when the library code it runs changes
        preprocess=config["preprocess"],
        largest_shot=lambda wildcards: LARGEST_SHOT if wildcards.split == "train" else 0,
    retries: 2  # a long job a kill can end (preemption, time limit, OOM); it restarts cleanly
    log:
        log_file("decode", PIXELS.removeprefix("results/"), "{split}"),
    benchmark:
        benchmark_file("decode", PIXELS.removeprefix("results/"), "{split}")
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/decode.py"
