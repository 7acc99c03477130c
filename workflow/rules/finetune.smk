# Fine-tuning: one job per (shot level, seed) trains every (method, K) run of that level in lockstep:
# the runs share each step's batch and one forward of the frozen trunk. A killed job resumes from its
# checkpoint (retries: 2, below), made under the job's params and code (headstart.finetune.job.job_key):
# a checkpoint of other code or settings is ignored, never resumed.

FINETUNE_PARAMS = dict(
    code=library_code("finetune"),  # reruns the job when the library code it runs changes
    finetune=CONFIG.finetune.tracked,
    entry=CONFIG.model.options,
    preprocess=CONFIG.preprocess.options,
)


rule finetune:
    wildcard_constraints:
        shots=rf"(?!{EXPORT_SHOTS}(?!\d))\d+",  # not the export's shot level: finetune_export, below
    input:
        heads=lambda wildcards: PLAN.job_heads(wildcards.shots, wildcards.seed),
        features_train=f"{RUN}/extract/features_train.safetensors",
        features_test=f"{RUN}/extract/features_test.safetensors",
        features_val=f"{RUN}/extract/features_val.safetensors",
        pixels_train=f"{PIXELS}/train.safetensors",
        manifest=f"{DATA}/manifest.parquet",
        weights=f"{MODELS}/weights.safetensors",
        classes=f"{DATA}/classes.parquet",
    output:
        curves=f"{EXP}/runs/shots{{shots}}/seed{{seed}}.parquet",
    params:
        **FINETUNE_PARAMS,
    threads: PLAN.finetune_threads
    resources:
        mem_mb=PLAN.finetune_mem_mb,
    retries: 2  # a killed job (preemption, time limit, OOM) resumes from its checkpoint
    log:
        log_file("finetune", DATASET, MODEL, EXPERIMENT, "shots{shots}_seed{seed}"),
    benchmark:
        benchmark_file("finetune", DATASET, MODEL, EXPERIMENT, "shots{shots}_seed{seed}")
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/finetune.py"


use rule finetune as finetune_export with:
    # the jobs of the export's shot level also keep their candidate for export (headstart.export.build): one run's
    # weights, at its selected evaluation; no other job keeps weights
    wildcard_constraints:
        shots=str(EXPORT_SHOTS) if EXPORT_SHOTS else "(?!)",  # export.shots 0: export_untrained, below
    output:
        curves=f"{EXP}/runs/shots{{shots}}/seed{{seed}}.parquet",
        selected=f"{EXP}/runs/shots{{shots}}/seed{{seed}}.selected.safetensors",
    params:
        **FINETUNE_PARAMS,
        export=CONFIG.export.tracked,  # which runs it may keep: only these jobs rerun when it changes


rule curves:
    input:
        PLAN.all_curves(),
    output:
        f"{EXP}/curves.parquet",
    params:
        code=library_code("curves"),  # reruns the job when the library code it runs changes
    log:
        log_file("curves", DATASET, MODEL, EXPERIMENT),
    benchmark:
        benchmark_file("curves", DATASET, MODEL, EXPERIMENT)
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/curves.py"
