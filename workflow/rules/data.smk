# Dataset download / ingestion and the split into train, val and test with nested shot subsets.
# Downloads are localrules: they run on the submitting host, so no cluster job needs the network.


localrules:
    download_fashion_mnist,
    download_archive,
    model_weights,


rule download_fashion_mnist:
    output:
        [f"{DATA}/downloads/{name}" for name in FASHION_MNIST_FILES],
    params:
        code=library_code("download_fashion_mnist"),  # reruns the job when the library code it runs changes
        mirror=CONFIG.data.source_options.get("mirror"),
    log:
        log_file("download_fashion_mnist", DATASET),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/download_fashion_mnist.py"


rule download_archive:
    # deleted once the dataset stage has extracted its listed images
    output:
        archive=temp(f"{DATA}/downloads/{{wnid}}.tar"),
    params:
        code=library_code("download_archive"),  # reruns the job when the library code it runs changes
        source=CONFIG.data.source_options,
    log:
        log_file("download_archive", DATASET, "{wnid}"),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/download_archive.py"


rule dataset:
    input:
        lambda wildcards: PLAN.dataset_inputs(),
        PLAN.download_targets(),
    output:
        inventory=f"{DATA}/images.parquet",
        report=f"{DATA}/images_report.tsv",
    params:
        code=library_code(f"dataset_{DATASET_SOURCE}"),  # reruns the job when the library code it runs changes
        dataset=CONFIG.data.options,
        split=CONFIG.data.split,
        seed=CONFIG.seed,
    log:
        log_file("dataset", DATASET),
    benchmark:
        benchmark_file("dataset", DATASET)
    conda:
        "../../envs/data.yaml"
    script:
        f"../scripts/dataset_{DATASET_SOURCE}.py"


rule split:
    input:
        inventory=f"{DATA}/images.parquet",
    output:
        manifest=f"{DATA}/manifest.parquet",
        classes=f"{DATA}/classes.parquet",
    params:
        code=library_code("split"),  # reruns the job when the library code it runs changes
        split=CONFIG.data.split,
        seed=CONFIG.seed,
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
        preprocess=CONFIG.preprocess.options,
        # the dataset's training images, not an experiment's: every experiment shares this cache
        largest_shot=lambda wildcards: CONFIG.data.decoded_shots if wildcards.split == "train" else 0,
    priority: 10  # on the critical path (every head and fine-tuning job waits on the features): before side jobs
    retries: 2  # a long job a kill can end (preemption, time limit, OOM); it restarts cleanly
    log:
        log_file("decode", PIXELS.removeprefix("results/"), "{split}"),
    benchmark:
        benchmark_file("decode", PIXELS.removeprefix("results/"), "{split}")
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/decode.py"
