# Initial heads: the top-K similarity mix (K picked per class type on validation) and baselines.


rule heads_similarity:
    input:
        sims=lambda wildcards: [sim_file(wildcards.measure, n) for n in SHOTS],
        head=f"results/models/{MODEL}/source_head.safetensors",
        features_val=f"{RUN}/extract/features_val.safetensors",
        manifest=f"{DATA}/manifest.parquet",
        classes=f"{DATA}/classes.parquet",
    output:
        heads=[f"{RUN}/heads/{{measure}}/k{k}/shots{n}.safetensors" for k in head_ks() for n in SHOTS],
        kgrid=f"{RUN}/kgrid/{{measure}}.parquet",
        best_k=f"{RUN}/kgrid/{{measure}}_best_k.json",
    params:
        shots=SHOTS,
        k_grid=config["heads"]["k_grid"],
        head_ks=head_ks(),
        seed=config["seed"],
    log:
        f"{RUN}/logs/heads_{{measure}}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/heads_similarity.py"


rule heads_baseline:
    input:
        head=f"results/models/{MODEL}/source_head.safetensors",
        features_train=f"{RUN}/extract/features_train.safetensors",
        manifest=f"{DATA}/manifest.parquet",
        classes=f"{DATA}/classes.parquet",
    output:
        heads=[f"{RUN}/heads/{{baseline}}/k0/shots{n}.safetensors" for n in SHOTS],
    params:
        shots=SHOTS,
        seed=config["seed"],
    log:
        f"{RUN}/logs/heads_{{baseline}}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/heads_baseline.py"
