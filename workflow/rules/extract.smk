# The source network: its weights (fetched on the submitting host), its head and class list, and one
# extraction pass per (dataset, model).


rule model_weights:
    # the only job that downloads model weights (torchvision's, timm's): a localrule, so it runs on the
    # submitting host; every cluster job reads this file
    output:
        weights="results/models/{model}/weights.safetensors",
    params:
        code=library_code("model_weights"),  # reruns the job when the library code it runs changes
        entry=lambda wildcards: CONFIG.models[wildcards.model],
    log:
        log_file("model_weights", "{model}"),
    benchmark:
        benchmark_file("model_weights", "{model}")
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/model_weights.py"


rule source_head:
    input:
        weights="results/models/{model}/weights.safetensors",
    output:
        head="results/models/{model}/source_head.safetensors",
        classes="results/models/{model}/source_classes.parquet",
    params:
        code=library_code("source_head"),  # reruns the job when the library code it runs changes
        entry=lambda wildcards: CONFIG.models[wildcards.model],
    log:
        log_file("source_head", "{model}"),
    benchmark:
        benchmark_file("source_head", "{model}")
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/source_head.py"


rule extract:
    input:
        **{f"pixels_{split}": f"{PIXELS}/{split}.safetensors" for split in SPLITS},
        source_classes=f"{MODELS}/source_classes.parquet",
        weights=f"{MODELS}/weights.safetensors",
    output:
        **{f"logits_{split}": f"{RUN}/extract/logits_{split}.parquet" for split in SPLITS},
        **{f"features_{split}": f"{RUN}/extract/features_{split}.safetensors" for split in SPLITS},
    params:
        code=library_code("extract"),  # reruns the job when the library code it runs changes
        entry=CONFIG.model.options,
        preprocess=CONFIG.preprocess.options,
        extract=CONFIG.extract.tracked,
        model=MODEL,
    priority: 10  # on the critical path (every head and fine-tuning job waits on it): before side jobs
    retries: 2  # a long job a kill can end (preemption, time limit, OOM); it restarts cleanly
    log:
        log_file("extract", DATASET, MODEL),
    benchmark:
        benchmark_file("extract", DATASET, MODEL)
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/extract.py"
