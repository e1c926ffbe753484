# The grid: which runs each figure needs, how seeds are grouped, where files go. The logic is
# hflow.grid's (shared with `hflow plan`); this file only names paths.

import json
import sys

from hflow.grid import (
    FIGURE_FILES,
    TABLE_FILES,
    MODEL_PATTERN,
    TASK_PATTERN,
    RunId,
    figure_runs,
    grid_runs,
    job_arguments,
    metrics_paths,
    plan,
    run_dir,
    seed_groups,
    validate_grid,
)
from hflow.layout import METRICS, RECORD, group_name, seed_file

OUT = config["out"]
FIGURES = config["figures_dir"]
SEEDS = config["seeds"]
SEED_GROUPS = seed_groups(config)
RUN = run_dir(f"{OUT}/runs")
ENV = "../envs/hflow.yaml"


wildcard_constraints:
    task=TASK_PATTERN,
    model=MODEL_PATTERN,
    hi="[0-9]+",
    lo="[0-9]+",
    fig="[A-Za-z0-9_]+",
    seed="[0-9]+",


validate_grid(config)  # the same checks as `hflow plan`; a bad grid stops here, naming it


def metrics_of(runs):
    return metrics_paths(config, runs)


def summary_inputs(wc):
    """The metrics a summary aggregates: one figure's runs, or all of them ('all')."""
    runs = grid_runs(config) if wc.name == "all" else figure_runs(config, wc.name)
    return metrics_of(runs)


def plan_summary():
    total = plan(config, [])[-1]
    return (
        f"hflow: this grid is {total['runs']} runs x {len(SEEDS)} seeds = "
        f"{total['seed_runs']} seed-runs, {total['env_steps']:,} env steps, about "
        f"{total['cpu_hours']:,.0f} CPU core-hours at paper size (`hflow plan` per figure); "
        f"jobs whose outputs exist are skipped"
    )
