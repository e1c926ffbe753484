# Aggregation, figures and tables: cheap, rebuilt from the runs' metrics (and nothing else),
# so they regenerate from cached results without retraining.


rule aggregate:
    input:
        all_metrics(),
    output:
        f"{OUT}/summary.parquet",
    conda:
        ENV
    log:
        f"{OUT}/logs/aggregate.log",
    shell:
        "hflow aggregate {input} -o {output} > {log} 2>&1"


rule figure:
    input:
        rules.aggregate.output,
    output:
        pdf=f"{FIGURES}/{{fig}}.pdf",
        png=f"{FIGURES}/{{fig}}.png",
        success_png=f"{FIGURES}/{{fig}}_success.png",
    params:
        spec=lambda wc: json.dumps(config["figures"][wc.fig]),
    conda:
        ENV
    log:
        f"{OUT}/logs/figure_{{fig}}.log",
    shell:
        "hflow figures --summary {input} --spec {params.spec:q} -o {output.pdf} > {log} 2>&1"


rule table2:
    input:
        rules.aggregate.output,
    output:
        md=f"{FIGURES}/table2.md",
        tex=f"{FIGURES}/table2.tex",
    conda:
        ENV
    log:
        f"{OUT}/logs/table2.log",
    shell:
        "hflow tables --summary {input} --md {output.md} --tex {output.tex} > {log} 2>&1"
