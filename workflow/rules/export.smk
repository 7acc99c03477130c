# The classifier to take home: of the fine-tuning jobs' candidates (each job of the export's shot level keeps
# its best run on validation), the best on validation, written as the whole network, timm's config and a card
# (headstart.export).


rule export_untrained:
    # export.shots 0: each seed's candidate is the untrained head, of those that need no image, best on
    # validation at iteration 0 (read from the largest shot level's curves); nothing is fine-tuned for it
    input:
        curves=f"{EXP}/runs/shots{LARGEST_SHOT}/seed{{seed}}.parquet",
        heads=lambda wildcards: PLAN.untrained_heads(wildcards.seed),
        weights=f"{MODELS}/weights.safetensors",
    output:
        candidate=f"{EXP}/runs/shots0/seed{{seed}}.selected.safetensors",
    params:
        code=library_code("export_untrained"),  # reruns the job when the library code it runs changes
        entry=CONFIG.model.options,
        train=CONFIG.finetune.train,
    log:
        log_file("export_untrained", DATASET, MODEL, EXPERIMENT, "seed{seed}"),
    benchmark:
        benchmark_file("export_untrained", DATASET, MODEL, EXPERIMENT, "seed{seed}")
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/export_untrained.py"


rule export:
    input:
        candidates=[PLAN.candidate_file(EXPORT_SHOTS, seed) for seed in SEEDS],
        weights=f"{MODELS}/weights.safetensors",
        classes=f"{DATA}/classes.parquet",
    output:
        model=f"{EXP}/export/model.safetensors",
        card=f"{EXP}/export/card.json",
    params:
        code=library_code("export"),  # reruns the job when the library code it runs changes
        entry=CONFIG.model.options,
        model=MODEL,
        preprocess=CONFIG.preprocess.options,
        train=CONFIG.finetune.train,
        seed=CONFIG.export.seed,
    log:
        log_file("export", DATASET, MODEL, EXPERIMENT),
    benchmark:
        benchmark_file("export", DATASET, MODEL, EXPERIMENT)
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/export.py"
