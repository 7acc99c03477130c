# N x M similarity matrices (target wnid x source wnid) as Parquet; visual ones per shot level.


rule similarity_visual:
    input:
        logits=f"{RUN}/extract/logits_train.parquet",
        manifest=f"{DATA}/manifest.parquet",
        classes=f"{DATA}/classes.parquet",
    output:
        matrix=f"{RUN}/sim/{{visual}}_shots{{shots}}.parquet",
    params:
        model=MODEL,
    log:
        f"{RUN}/logs/sim_{{visual}}_shots{{shots}}.log",
    benchmark:
        f"{RUN}/benchmarks/sim_{{visual}}_shots{{shots}}.tsv"
    conda:
        "../../envs/similarity.yaml"
    script:
        "../scripts/similarity_visual.py"


rule similarity_wordnet:
    input:
        classes=f"{DATA}/classes.parquet",
        source_classes=f"results/models/{MODEL}/source_classes.parquet",
    output:
        [f"{RUN}/sim/{m}.parquet" for m in WORDNET],
    params:
        measures=WORDNET,
        model=MODEL,
    log:
        f"{RUN}/logs/sim_wordnet.log",
    benchmark:
        f"{RUN}/benchmarks/sim_wordnet.tsv"
    conda:
        "../../envs/similarity.yaml"
    script:
        "../scripts/similarity_wordnet.py"


rule similarity_wordvec:
    input:
        wordvec_inputs,
        classes=f"{DATA}/classes.parquet",
        source_classes=f"results/models/{MODEL}/source_classes.parquet",
    output:
        f"{RUN}/sim/wordvec.parquet",
    params:
        wordvec=config["similarity"]["wordvec"],
        model=MODEL,
    log:
        f"{RUN}/logs/sim_wordvec.log",
    benchmark:
        f"{RUN}/benchmarks/sim_wordvec.tsv"
    conda:
        "../../envs/similarity.yaml"
    script:
        "../scripts/similarity_wordvec.py"
