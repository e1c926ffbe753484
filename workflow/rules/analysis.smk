# Aggregation, figures and tables: cheap, rebuilt from the runs' metrics (and nothing else),
# so they regenerate from cached results without retraining. Each figure aggregates its own
# runs only, so asking for one figure trains only what it draws.


rule aggregate:
    input:
        summary_inputs,
    output:
        f"{OUT}/summary/{{name}}.parquet",
    conda:
        ENV
    log:
        f"{OUT}/logs/aggregate_{{name}}.log",
    shell:
        "hflow aggregate {input:q} -o {output:q} > {log:q} 2>&1"


rule figure:
    input:
        f"{OUT}/summary/{{fig}}.parquet",
    output:
        pdf=report(
            f"{FIGURES}/{FIGURE_FILES[0]}",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{fig}", "page": "PDF (reward, success)"},
        ),
        png=report(
            f"{FIGURES}/{FIGURE_FILES[1]}",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{fig}", "page": "average reward"},
        ),
        success_png=report(
            f"{FIGURES}/{FIGURE_FILES[2]}",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{fig}", "page": "success rate"},
        ),
        low_png=report(
            f"{FIGURES}/{FIGURE_FILES[3]}",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{fig}", "page": "low level: subgoal distance left"},
        ),
        low_xy_png=report(
            f"{FIGURES}/{FIGURE_FILES[4]}",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{fig}", "page": "low level: x, y progress per segment"},
        ),
    params:
        spec=lambda wc: json.dumps(config["figures"][wc.fig]),
    conda:
        ENV
    log:
        f"{OUT}/logs/figure_{{fig}}.log",
    shell:
        "hflow figures --summary {input:q} --spec {params.spec:q} -o {output.pdf:q}"
        " > {log:q} 2>&1"


rule table2:
    input:
        f"{OUT}/summary/all.parquet",
    output:
        md=f"{FIGURES}/{TABLE_FILES[0]}",
        tex=f"{FIGURES}/{TABLE_FILES[1]}",
        html=report(
            f"{FIGURES}/{TABLE_FILES[2]}",
            caption="../report/table2.rst",
            category="Tables",
            labels={"table": "Table II and results"},
        ),
    params:
        figures=json.dumps(config["figures"]),
    conda:
        ENV
    log:
        f"{OUT}/logs/table2.log",
    shell:
        "hflow tables --summary {input:q} --figures {params.figures:q} --md {output.md:q}"
        " --tex {output.tex:q} --html {output.html:q} > {log:q} 2>&1"
