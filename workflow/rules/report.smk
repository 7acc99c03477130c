# The paper's figures and tables, one rule each, all captioned in `snakemake --report`.


localrules:
    curves,
    fig1,
    fig2,
    fig3,
    table1,
    table2,


rule fig1:
    input:
        curves=f"{RUN}/curves.parquet",
    output:
        png=report(f"{RUN}/figures/fig1.png", caption="../report/fig1.rst", category="Figures"),
        pdf=f"{RUN}/figures/fig1.pdf",
    params:
        shots=LARGEST_SHOT,
    log:
        f"{RUN}/logs/fig1.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/fig1.py"


rule fig2:
    input:
        curves=f"{RUN}/curves.parquet",
        classes=f"{DATA}/classes.parquet",
    output:
        png=report(f"{RUN}/figures/fig2.png", caption="../report/fig2.rst", category="Figures"),
        pdf=f"{RUN}/figures/fig2.pdf",
    params:
        shots=LARGEST_SHOT,
        example_class=config["report"]["example_class"],
    log:
        f"{RUN}/logs/fig2.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/fig2.py"


rule fig3:
    input:
        kgrid=[f"{RUN}/kgrid/{m}/shots{LARGEST_SHOT}.parquet" for m in MEASURES],
    output:
        png=report(f"{RUN}/figures/fig3.png", caption="../report/fig3.rst", category="Figures"),
        pdf=f"{RUN}/figures/fig3.pdf",
    params:
        shots=LARGEST_SHOT,
        measures=MEASURES,
    log:
        f"{RUN}/logs/fig3.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/fig3.py"


rule table1:
    input:
        sims=[sim_file(m, LARGEST_SHOT) for m in MEASURES],
        classes=f"{DATA}/classes.parquet",
        source_classes=f"results/models/{MODEL}/source_classes.parquet",
    output:
        csv=report(f"{RUN}/tables/table1.csv", caption="../report/table1.rst", category="Tables"),
        md=f"{RUN}/tables/table1.md",
        tex=f"{RUN}/tables/table1.tex",
    params:
        measures=MEASURES,
        example_class=config["report"]["example_class"],
    log:
        f"{RUN}/logs/table1.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/table1.py"


rule table2:
    input:
        curves=f"{RUN}/curves.parquet",
        best_k=[f"{RUN}/kgrid/{m}/shots{n}_best_k.json" for m in METHODS if m in MEASURES for n in SHOTS],
    output:
        csv=report(f"{RUN}/tables/table2.csv", caption="../report/table2.rst", category="Tables"),
        md=f"{RUN}/tables/table2.md",
        tex=f"{RUN}/tables/table2.tex",
    params:
        measures=MEASURES,
    log:
        f"{RUN}/logs/table2.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/table2.py"
