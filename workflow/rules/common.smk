# The grid: which runs the figures need, how seeds are grouped, where files go.

import json

from hflow.agents.registry import get_preset
from hflow.config import resolve

OUT = config["out"]
FIGURES = config["figures_dir"]
SEEDS = config["seeds"]
SEED_GROUPS = [
    SEEDS[i : i + config["group_size"]] for i in range(0, len(SEEDS), config["group_size"])
]
RUN = f"{OUT}/runs/{{task}}/{{model}}_{{hi}}_{{lo}}"
ENV = "../envs/hflow.yaml"


wildcard_constraints:
    task="(Ant|Point)(Maze|Push|Fall)(Single|Multi)",
    model="[a-z][a-z0-9_]*",
    hi="[0-9]+",
    lo="[0-9]+",
    fig="[A-Za-z0-9_]+",
    seed="[0-9]+",


def grid_runs():
    """Unique (task, model, hi, lo) of all figures, in order of appearance."""
    runs = {}
    for figure in config["figures"].values():
        for panel in figure["panels"]:
            for run in panel["runs"]:
                runs[(panel["task"], run["model"], run["hi"], run["lo"])] = None
    return list(runs)


def train_sets(model):
    """The grid's extra `--set` values for a preset (flow_set only for flow presets)."""
    return list(config.get("set", [])) + (
        list(config.get("flow_set", [])) if get_preset(model).fdgm else []
    )


def train_options():
    return {
        "train.steps": config["steps"],
        "train.device": config["device"],
    }


def _check_grid():
    """Resolve every run's config now, so a bad model, goal size or --set value stops the
    workflow before any job starts, with hflow's message naming it."""
    fixed = [f"train.eval_every={config['eval_every']}", f"train.eval_episodes={config['eval_episodes']}"]
    for task, model, hi, lo in grid_runs():
        options = {"task.name": task, "task.hi": hi, "task.lo": lo, **train_options()}
        try:
            resolve(model, options=options, sets=train_sets(model) + fixed)
        except ValueError as err:
            raise ValueError(f"grid run {task} {model} hi={hi} lo={lo}: {err}") from None


_check_grid()


def all_metrics():
    return [
        f"{OUT}/runs/{task}/{model}_{hi}_{lo}/seed{seed}/metrics.csv"
        for task, model, hi, lo in grid_runs()
        for seed in SEEDS
    ]
