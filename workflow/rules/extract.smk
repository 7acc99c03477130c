# The source network: its head and class list, and one extraction pass per (dataset, model).


rule source_head:
    output:
        head="results/models/{model}/source_head.safetensors",
        classes="results/models/{model}/source_classes.parquet",
    params:
        entry=lambda wildcards: config["models"][wildcards.model],
    log:
        "results/models/{model}/logs/source_head.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/source_head.py"


rule extract:
    input:
        manifest=f"{DATA}/manifest.parquet",
        source_classes=f"results/models/{MODEL}/source_classes.parquet",
    output:
        logits=expand(f"{RUN}/extract/logits_{{split}}.parquet", split=SPLITS),
        features=expand(f"{RUN}/extract/features_{{split}}.safetensors", split=SPLITS),
    params:
        entry=config["models"][MODEL],
        preprocess=config["preprocess"],
        extract=tracked(config["extract"], EXTRACT_UNTRACKED),
        largest_shot=LARGEST_SHOT,
        model=MODEL,
    log:
        f"{RUN}/logs/extract.log",
    benchmark:
        f"{RUN}/benchmarks/extract.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/extract.py"
