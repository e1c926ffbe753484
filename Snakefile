# hflow: the paper's grid -> training jobs -> Fig. 3-5 and Table II.
#
#   snakemake --cores 8 figures/fig3.pdf                        # a workstation
#   snakemake --workflow-profile workflow/profiles/slurm all    # a SLURM cluster
#   snakemake --cores 2 all --configfile config/smoke.yaml      # minutes, CPU only
#
# Rules call the `hflow` CLI; the logic lives in the package.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"


rule all:
    input:
        figures=expand(f"{FIGURES}/{{fig}}.pdf", fig=list(config["figures"])),
        table=[f"{FIGURES}/table2.md", f"{FIGURES}/table2.tex"],
    default_target: True


rule runs:
    input:
        all_metrics(),
