# hflow: the paper's grid -> training jobs -> Fig. 3-5 and Table II.
#
#   hflow plan figures/fig3.pdf                                  # what a target costs
#   snakemake --cores 8 figures/fig3.pdf                         # a workstation
#   snakemake --workflow-profile workflow/profiles/slurm all     # a SLURM cluster
#   snakemake --cores 2 all --configfile config/smoke.yaml       # minutes, CPU only
#
# Rules call the `hflow` CLI; the logic lives in the package. Parsing this file imports
# neither torch nor MuJoCo.

from snakemake.utils import min_version

min_version("9.0")


# The configuration, read once as hflow reads every config file (numbers in base 10, a key
# given twice an error; Snakemake's own read of a --configfile is replaced): a --configfile is
# the whole configuration (a missing key is an error), not a patch on the paper's grid;
# without one, the paper's grid. --config key=value still wins. It is checked once, in
# workflow/rules/common.smk, by the function `hflow plan` uses (hflow.grid.validate_grid).
from hflow.grid import read_grid_file

config.clear()
for _file in workflow.overwrite_configfiles or ["config/config.yaml"]:
    config.update(read_grid_file(_file))
config.update(workflow.config_settings.config)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"


onstart:
    print(plan_summary(), file=sys.stderr)


rule all:
    input:
        figures=[f"{FIGURES}/{pattern.format(fig=fig)}" for fig in config["figures"]
                 for pattern in FIGURE_FILES],
        table=[f"{FIGURES}/{name}" for name in TABLE_FILES[:2]],
    default_target: True


rule runs:
    input:
        metrics_of(grid_runs(config)),
