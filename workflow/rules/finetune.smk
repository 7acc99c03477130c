# Fine-tuning: one job per (method, K, shot level); its seeds run inside, each to its own curve.
# A killed job resumes from its checkpoints (retries are set in the profiles).


rule finetune:
    input:
        head=f"{RUN}/heads/{{method}}/k{{k}}/shots{{shots}}.safetensors",
        features_train=f"{RUN}/extract/features_train.safetensors",
        features_test=f"{RUN}/extract/features_test.safetensors",
        manifest=f"{DATA}/manifest.parquet",
        classes=f"{DATA}/classes.parquet",
    output:
        curves=[f"{RUN}/runs/{{method}}/k{{k}}/shots{{shots}}/seed{s}/curve.parquet" for s in SEEDS],
    params:
        seeds=SEEDS,
        finetune=tracked(config["finetune"], FINETUNE_UNTRACKED),
        entry=config["models"][MODEL],
        preprocess=config["preprocess"],
    threads: finetune_threads()
    log:
        f"{RUN}/logs/finetune/{{method}}_k{{k}}_shots{{shots}}.log",
    benchmark:
        f"{RUN}/benchmarks/finetune/{{method}}_k{{k}}_shots{{shots}}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/finetune.py"


rule curves:
    input:
        all_curves(),
    output:
        f"{RUN}/curves.parquet",
    log:
        f"{RUN}/logs/curves.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/curves.py"
