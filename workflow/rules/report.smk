# The paper's figures and tables, one rule each, all captioned in `snakemake --report`.


localrules:
    curves,
    fig_answer,
    fig_answer_curves,
    table_answer,
    fig1,
    fig2,
    fig3,
    table1,
    table2,
    table_init,
    table_convergence,
    table_linear,
    top_sources,


rule fig_answer:
    input:
        curves=f"{EXP}/curves.parquet",
    output:
        png=report(f"{EXP}/figures/answer.png", caption="../report/fig_answer.rst", category="Answer"),
        pdf=f"{EXP}/figures/answer.pdf",
    params:
        code=library_code("fig_answer"),  # reruns the job when the library code it runs changes
    log:
        log_file("fig_answer", DATASET, MODEL, EXPERIMENT),
    benchmark:
        benchmark_file("fig_answer", DATASET, MODEL, EXPERIMENT)
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/fig_answer.py"


rule fig_answer_curves:
    input:
        curves=f"{EXP}/curves.parquet",
    output:
        png=report(
            f"{EXP}/figures/answer_curves.png", caption="../report/fig_answer_curves.rst", category="Answer"
        ),
        pdf=f"{EXP}/figures/answer_curves.pdf",
    params:
        code=library_code("fig_answer_curves"),  # reruns the job when the library code it runs changes
    log:
        log_file("fig_answer_curves", DATASET, MODEL, EXPERIMENT),
    benchmark:
        benchmark_file("fig_answer_curves", DATASET, MODEL, EXPERIMENT)
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/fig_answer_curves.py"


rule table_answer:
    input:
        curves=f"{EXP}/curves.parquet",
    output:
        csv=report(f"{EXP}/tables/answer.csv", caption="../report/answer.rst", category="Answer"),
        md=f"{EXP}/tables/answer.md",
        tex=f"{EXP}/tables/answer.tex",
    params:
        code=library_code("table_answer"),  # reruns the job when the library code it runs changes
    log:
        log_file("table_answer", DATASET, MODEL, EXPERIMENT),
    benchmark:
        benchmark_file("table_answer", DATASET, MODEL, EXPERIMENT)
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/table_answer.py"


rule fig1:
    input:
        curves=f"{EXP}/curves.parquet",
    output:
        png=report(f"{EXP}/figures/fig1.png", caption="../report/fig1.rst", category="Figures"),
        pdf=f"{EXP}/figures/fig1.pdf",
    params:
        code=library_code("fig1"),  # reruns the job when the library code it runs changes
        shots=LARGEST_SHOT,
    log:
        log_file("fig1", DATASET, MODEL, EXPERIMENT),
    benchmark:
        benchmark_file("fig1", DATASET, MODEL, EXPERIMENT)
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/fig1.py"


rule fig2:
    input:
        curves=f"{EXP}/curves.parquet",
        classes=f"{DATA}/classes.parquet",
    output:
        png=report(f"{EXP}/figures/fig2.png", caption="../report/fig2.rst", category="Figures"),
        pdf=f"{EXP}/figures/fig2.pdf",
    params:
        code=library_code("fig2"),  # reruns the job when the library code it runs changes
        shots=LARGEST_SHOT,
        example_class=CONFIG.report.example_class,
    log:
        log_file("fig2", DATASET, MODEL, EXPERIMENT),
    benchmark:
        benchmark_file("fig2", DATASET, MODEL, EXPERIMENT)
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/fig2.py"


rule fig3:
    input:
        kgrid=[PLAN.kgrid_file(m, LARGEST_SHOT) for m in MEASURES],
    output:
        png=report(f"{EXP}/figures/fig3.png", caption="../report/fig3.rst", category="Figures"),
        pdf=f"{EXP}/figures/fig3.pdf",
    params:
        code=library_code("fig3"),  # reruns the job when the library code it runs changes
        shots=LARGEST_SHOT,
        measures=MEASURES,
    log:
        log_file("fig3", DATASET, MODEL, EXPERIMENT),
    benchmark:
        benchmark_file("fig3", DATASET, MODEL, EXPERIMENT)
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/fig3.py"


rule table1:
    input:
        **{f"sim_{m}": PLAN.sim_file(m, LARGEST_SHOT) for m in MEASURES},
        classes=f"{DATA}/classes.parquet",
        source_classes=f"{MODELS}/source_classes.parquet",
    output:
        csv=report(f"{EXP}/tables/table1.csv", caption="../report/table1.rst", category="Tables"),
        md=f"{EXP}/tables/table1.md",
        tex=f"{EXP}/tables/table1.tex",
    params:
        code=library_code("table1"),  # reruns the job when the library code it runs changes
        measures=MEASURES,
        example_class=CONFIG.report.example_class,
    log:
        log_file("table1", DATASET, MODEL, EXPERIMENT),
    benchmark:
        benchmark_file("table1", DATASET, MODEL, EXPERIMENT)
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/table1.py"


rule table2:
    input:
        curves=f"{EXP}/curves.parquet",
        best_k=PLAN.best_k_files(),
    output:
        csv=report(f"{EXP}/tables/table2.csv", caption="../report/table2.rst", category="Tables"),
        md=f"{EXP}/tables/table2.md",
        tex=f"{EXP}/tables/table2.tex",
    params:
        code=library_code("table2"),  # reruns the job when the library code it runs changes
        measures=MEASURES,
    log:
        log_file("table2", DATASET, MODEL, EXPERIMENT),
    benchmark:
        benchmark_file("table2", DATASET, MODEL, EXPERIMENT)
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/table2.py"


rule table_init:
    input:
        heads=PLAN.job_heads(LARGEST_SHOT, SEEDS[0]),
        features_test=f"{RUN}/extract/features_test.safetensors",
    output:
        csv=report(f"{EXP}/tables/init.csv", caption="../report/table_init.rst", category="Tables"),
        md=f"{EXP}/tables/init.md",
        tex=f"{EXP}/tables/init.tex",
    params:
        code=library_code("table_init"),  # reruns the job when the library code it runs changes
        runs=CONFIG.finetune.job_runs(LARGEST_SHOT),
        shots=LARGEST_SHOT,
        seed=SEEDS[0],
    log:
        log_file("table_init", DATASET, MODEL, EXPERIMENT),
    benchmark:
        benchmark_file("table_init", DATASET, MODEL, EXPERIMENT)
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/table_init.py"


rule table_linear:
    input:
        sweeps=PLAN.linear_sweeps(),
    output:
        csv=report(f"{EXP}/tables/linear_c.csv", caption="../report/table_linear.rst", category="Tables"),
        md=f"{EXP}/tables/linear_c.md",
        tex=f"{EXP}/tables/linear_c.tex",
    params:
        code=library_code("table_linear"),  # reruns the job when the library code it runs changes
    log:
        log_file("table_linear", DATASET, MODEL, EXPERIMENT),
    benchmark:
        benchmark_file("table_linear", DATASET, MODEL, EXPERIMENT)
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/table_linear.py"


rule table_convergence:
    input:
        curves=f"{EXP}/curves.parquet",
    output:
        csv=report(f"{EXP}/tables/convergence.csv", caption="../report/table_convergence.rst", category="Tables"),
        md=f"{EXP}/tables/convergence.md",
        tex=f"{EXP}/tables/convergence.tex",
    params:
        code=library_code("table_convergence"),  # reruns the job when the library code it runs changes
        tolerance=0.01,
    log:
        log_file("table_convergence", DATASET, MODEL, EXPERIMENT),
    benchmark:
        benchmark_file("table_convergence", DATASET, MODEL, EXPERIMENT)
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/table_convergence.py"


rule top_sources:
    input:
        **{f"sim_{m}": PLAN.sim_file(m, LARGEST_SHOT) for m in MEASURES},
        classes=f"{DATA}/classes.parquet",
        source_classes=f"{MODELS}/source_classes.parquet",
    output:
        # one job for every measure (each table is a second's work, the job's start-up more)
        **{
            f"csv_{m}": report(
                f"{EXP}/tables/top_sources/{m}.csv",
                caption="../report/top_sources.rst",
                category="Similarity matrices",
                labels={"measure": m},
            )
            for m in MEASURES
        },
        **{f"{ext}_{m}": f"{EXP}/tables/top_sources/{m}.{ext}" for m in MEASURES for ext in ("md", "tex")},
    params:
        code=library_code("top_sources"),  # reruns the job when the library code it runs changes
        n=5,
        shots=LARGEST_SHOT,
        measures=MEASURES,
    log:
        log_file("top_sources", DATASET, MODEL, EXPERIMENT),
    benchmark:
        benchmark_file("top_sources", DATASET, MODEL, EXPERIMENT)
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/top_sources.py"
