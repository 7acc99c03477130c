# Initial heads per shot level, so that adding a shot level writes only that level's heads: one job
# per (visual measure, shot level) for the top-K similarity mix (K picked per class type on validation),
# at every level for the measures that are fine-tuning methods and at the largest (Fig. 3) for the
# others, and one per semantic measure ('all_shots': its matrix and the validation images that pick K
# are the same at every level); one job per shot level for imprinting; the random (Xavier)
# head is drawn per fine-tuning seed, whatever the shot level; a `<measure>_calibrated` method's head
# is its measure's head divided by a temperature fitted on the shot level's training images; the
# linear probe and the `<measure>_prior` heads sweep the L2 strength and keep the best on validation;
# Co-Tuning's run holds the seed's random head, the source head and the relationship p(source | target).


rule heads_similarity:
    input:
        sim=lambda wildcards: PLAN.sim_file(wildcards.measure, wildcards.level.removeprefix("shots")),
        head=f"{MODELS}/source_head.safetensors",
        features_val=f"{RUN}/extract/features_val.safetensors",
        manifest=f"{DATA}/manifest.parquet",
        classes=f"{DATA}/classes.parquet",
    output:
        **{f"k{k}": f"{RUN}/heads/{{measure}}/k{k}/{{level}}.safetensors" for k in CONFIG.heads.head_ks},
        kgrid=f"{RUN}/kgrid/{{measure}}/{{level}}.parquet",
        best_k=f"{RUN}/kgrid/{{measure}}/{{level}}_best_k.json",
    params:
        code=library_code("heads_similarity"),  # reruns the job when the library code it runs changes
        k_grid=list(CONFIG.heads.k_grid),
        head_ks=CONFIG.heads.head_ks,
        seed=CONFIG.seed,
    log:
        log_file("heads_similarity", DATASET, MODEL, "{measure}_{level}"),
    benchmark:
        benchmark_file("heads_similarity", DATASET, MODEL, "{measure}_{level}")
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/heads_similarity.py"


rule heads_imprint:
    input:
        features_train=f"{RUN}/extract/features_train.safetensors",
        manifest=f"{DATA}/manifest.parquet",
        classes=f"{DATA}/classes.parquet",
    output:
        head=f"{RUN}/heads/imprint/k0/shots{{shots}}.safetensors",
    params:
        code=library_code("heads_imprint"),  # reruns the job when the library code it runs changes
    log:
        log_file("heads_imprint", DATASET, MODEL, "shots{shots}"),
    benchmark:
        benchmark_file("heads_imprint", DATASET, MODEL, "shots{shots}")
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/heads_imprint.py"


rule heads_linear:
    input:
        unpack(
            lambda wildcards: {"prior": PLAN.head_file(similarity_measure(wildcards.linear), "best", wildcards.shots, None)}
            if wildcards.linear != "probe"
            else {}
        ),
        features_train=f"{RUN}/extract/features_train.safetensors",
        features_val=f"{RUN}/extract/features_val.safetensors",
        manifest=f"{DATA}/manifest.parquet",
        classes=f"{DATA}/classes.parquet",
    output:
        head=f"{RUN}/heads/{{linear}}/k{{k}}/shots{{shots}}.safetensors",
        sweep=f"{RUN}/heads/{{linear}}/k{{k}}/shots{{shots}}_sweep.parquet",
    params:
        code=library_code("heads_linear"),  # reruns the job when the library code it runs changes
        c_grid=CONFIG.heads.c_grid,
    log:
        log_file("heads_linear", DATASET, MODEL, "{linear}_k{k}_shots{shots}"),
    benchmark:
        benchmark_file("heads_linear", DATASET, MODEL, "{linear}_k{k}_shots{shots}")
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/heads_linear.py"


rule heads_cotuning:
    input:
        target=f"{RUN}/heads/random/k0/seed{{seed}}.safetensors",
        source=f"{MODELS}/source_head.safetensors",
        source_classes=f"{MODELS}/source_classes.parquet",
        relationship=f"{RUN}/sim/softmax_shots{{shots}}.parquet",
        classes=f"{DATA}/classes.parquet",
    output:
        head=f"{EXP}/heads/{{cotuning}}/k0/shots{{shots}}_seed{{seed}}.safetensors",
    params:
        code=library_code("heads_cotuning"),  # reruns the job when the library code it runs changes
        trade_off=CONFIG.finetune.cotuning_trade_off,
    log:
        log_file("heads_cotuning", DATASET, MODEL, EXPERIMENT, "{cotuning}_shots{shots}_seed{seed}"),
    benchmark:
        benchmark_file("heads_cotuning", DATASET, MODEL, EXPERIMENT, "{cotuning}_shots{shots}_seed{seed}")
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/heads_cotuning.py"


rule heads_random:
    input:
        head=f"{MODELS}/source_head.safetensors",
        classes=f"{DATA}/classes.parquet",
    output:
        head=f"{RUN}/heads/random/k0/seed{{seed}}.safetensors",
    params:
        code=library_code("heads_random"),  # reruns the job when the library code it runs changes
    log:
        log_file("heads_random", DATASET, MODEL, "seed{seed}"),
    benchmark:
        benchmark_file("heads_random", DATASET, MODEL, "seed{seed}")
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/heads_random.py"


rule heads_calibrated:
    input:
        head=lambda wildcards: PLAN.head_file(similarity_measure(wildcards.calibrated), wildcards.k, wildcards.shots, None),
        features_train=f"{RUN}/extract/features_train.safetensors",
        manifest=f"{DATA}/manifest.parquet",
        classes=f"{DATA}/classes.parquet",
    output:
        head=f"{RUN}/heads/{{calibrated}}/k{{k}}/shots{{shots}}.safetensors",
    params:
        code=library_code("heads_calibrated"),  # reruns the job when the library code it runs changes
    log:
        log_file("heads_calibrated", DATASET, MODEL, "{calibrated}_k{k}_shots{shots}"),
    benchmark:
        benchmark_file("heads_calibrated", DATASET, MODEL, "{calibrated}_k{k}_shots{shots}")
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/heads_calibrated.py"
