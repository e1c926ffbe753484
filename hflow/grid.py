"""The grid of a workflow config: the runs each figure needs, each job's options (the run
contract), and what it costs.

The Snakefile and `hflow plan` both read a grid config (config/config.yaml: seeds, steps,
`set:`, figures of panels of runs) through these functions, and a training job reads exactly
the options `job_options` gives, written to a file (`hflow train --config`): one resolution,
validated once at parse time by `check_grid`. Importing this module loads neither torch nor
MuJoCo, so a workflow parses on a machine without the training stack.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hflow.agents.registry import PRESETS, get_preset
from hflow.config import ConfigError, parse_set
from hflow.envs.tasks import TASKS
from hflow.layout import METRICS, RUN_DIR, seed_file
from hflow.resolve import resolve

# The workflow's names, one source for the Snakefile's patterns, the schema and `hflow plan`:
# a run's directory under each root (runs/, state/, logs/), Snakemake's {task}
# wildcard (exactly the task registry's names), and what the analysis rules write.
TASK_PATTERN = "|".join(TASKS)
MODEL_PATTERN = "|".join(PRESETS)  # Snakemake's {model}: exactly the presets' names
FIGURE_FILES = ("{fig}.pdf", "{fig}.png", "{fig}_success.png", "{fig}_low.png",
                "{fig}_low_xy.png")
MAX_FIGURE_NAME = 100  # file names stop at 255 bytes, and the temp file adds to it
TABLE_FILES = ("table2.md", "table2.tex", "table2.html")

# Seconds per env step and member, measured by benchmarks/train_throughput.py (paper-size
# nets, AntPush, both levels updating, one torch thread) on the 2-core CI machine; see the
# README's run-time table. Presets not measured are costed like `ours` (the flow models
# measured within 15% of one another).
CPU_SECONDS_PER_STEP = {"hiro": 1 / 107.7, "ours": 1 / 126.7}

# Member env steps/s of one GPU running GPU_JOBS grid jobs (K = 5 seeds each) at once.
# Source: measured on one H200 node (16 cores; torch 2.11, CUDA 13,
# mujoco 3.14; AntPushSingle, paper-size nets, both levels updating, captured steps, 4 env
# threads per job): hiro, four K = 5 jobs together, 6,044 (one K = 5 job alone: 1,849).
# ours at K = 5 was not measured; it is costed at hiro's rate x 0.92, their ratio at K = 16
# (3,463 / 3,753). Not yet measured by this repository's own GPU check.
GPU_JOBS = 4
GPU_NAME = "H200"
GPU_MEMBER_STEPS_PER_S = {"hiro": 6044.0, "ours": 6044.0 * 3463 / 3753}


@dataclass(frozen=True)
class RunId:
    """A run of the grid: one (task, model, hi, lo), trained as groups of seeds."""
    task: str
    model: str
    hi: int
    lo: int

    @property
    def name(self) -> str:
        return f"{self.task} {self.model} hi={self.hi} lo={self.lo}"


def run_dir(root: str, run: RunId | None = None) -> str:
    """A run's directory under `root`; without a run, the pattern with Snakemake's wildcards."""
    if run is None:
        return f"{root}/{RUN_DIR}"
    return f"{root}/" + RUN_DIR.format(task=run.task, model=run.model, hi=run.hi, lo=run.lo)


def metrics_paths(config: dict, runs: list[RunId]) -> list[str]:
    """Each run's metrics.csv, per seed: the training jobs' outputs, the summaries' inputs."""
    return [seed_file(run_dir(config['out'] + '/runs', r), seed, METRICS)
            for r in runs for seed in config["seeds"]]


def figure_runs(config: dict, figure: str) -> list[RunId]:
    """The distinct runs one figure draws, in order of appearance."""
    runs = {}
    for panel in config["figures"][figure]["panels"]:
        for r in panel["runs"]:
            runs[RunId(panel["task"], r["model"], r["hi"], r["lo"])] = None
    return list(runs)


def grid_runs(config: dict) -> list[RunId]:
    """The distinct runs of all figures (a run shared by two figures is trained once)."""
    runs = {}
    for figure in config["figures"]:
        runs.update(dict.fromkeys(figure_runs(config, figure)))
    return list(runs)


def seed_groups(config: dict) -> list[list[int]]:
    seeds, size = config["seeds"], config["group_size"]
    return [seeds[i:i + size] for i in range(0, len(seeds), size)]


def job_options(config: dict, run: RunId, seeds: list[int]) -> dict[str, Any]:
    """Everything one training job is told, as config keys (passed by `job_arguments`)."""
    options: dict[str, Any] = {
        "model": run.model, "task.name": run.task, "task.hi": run.hi, "task.lo": run.lo,
        "train.seeds": list(seeds), "train.steps": config["steps"],
        "train.device": config["device"], "train.eval_every": config["eval_every"],
        "train.eval_episodes": config["eval_episodes"],
        "train.torch_threads": config["resources"]["threads"],
        "train.env_threads": config["resources"]["threads"],  # a job's cores step its envs
    }
    grid_keys = tuple(options)  # the grid decides these; `set:` may not override them
    extra = list(config.get("set", []))
    if get_preset(run.model).fdgm:
        extra += list(config.get("flow_set", []))
    given: dict[str, str] = {}
    for entry in extra:
        key, value = parse_set(entry)
        if key in given:
            raise ConfigError(f"set: {given[key]!r} and {entry!r} both set '{key}'; give it "
                              f"once")
        given[key] = entry
        if key in grid_keys:
            raise ConfigError(f"set: {entry!r} overrides '{key}', which the grid decides "
                              f"(grid keys: {', '.join(grid_keys)}); change it in the grid "
                              f"config's own keys or figures instead")
        options[key] = value
    return options


SCHEMA = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


def read_grid_file(path: str | Path) -> dict:
    """A workflow config read as hflow reads every config: numbers in base 10, a key given
    twice an error (Snakemake's own reading takes the last and YAML 1.1's octal)."""
    from hflow.config import read_yaml_file

    return read_yaml_file(path)


def validate_grid(config: Any, source: str = "the workflow config") -> None:
    """Everything the workflow checks before a job starts, in one place (the Snakefile and
    `hflow plan` both call it): the schema, each panel's target and colours, no run twice in
    a panel, then every job's options resolved (`check_grid`)."""
    import jsonschema
    from matplotlib.colors import is_color_like

    from hflow.envs.tasks import get_task, goal_space

    schema = yaml.safe_load(SCHEMA.read_text())
    try:
        jsonschema.validate(config, schema)
    except jsonschema.ValidationError as err:
        where = "/".join(map(str, err.absolute_path)) or "the top level"
        raise ConfigError(f"{source}: at {where}: {err.message}") from None
    for key in ("out", "figures_dir"):
        if "\0" in config[key]:
            raise ConfigError(f"{source}: {key} {config[key]!r} holds a NUL byte, which no path "
                              f"can")
    for name, figure in config["figures"].items():
        if len(name) > MAX_FIGURE_NAME:
            raise ConfigError(f"{source}: figure name {name[:30]!r}... is {len(name)} characters; "
                              f"its files ({name}_success.png) need a name of at most "
                              f"{MAX_FIGURE_NAME}")
        for i, panel in enumerate(figure["panels"]):
            where = f"{source}: figure {name!r}, panel {i} ({panel['task']})"
            seen = set()
            for r in panel["runs"]:
                run = (r["model"], r["hi"], r["lo"])
                if run in seen:
                    raise ConfigError(f"{where}: run {r['model']}_{r['hi']}_{r['lo']} is given "
                                      f"twice; give each run once per panel")
                seen.add(run)
                if "color" in r and not is_color_like(r["color"]):
                    raise ConfigError(f"{where}: color {r['color']!r} of {r['model']} is not a "
                                      f"matplotlib colour (a name such as 'green', or '#1f77b4')")
            if "target" in panel:
                hi = panel["runs"][0]["hi"]
                names = goal_space(get_task(panel["task"]), hi=hi).eval_target_names
                if panel["target"] not in names or len(names) < 2:
                    raise ConfigError(f"{where}: target {panel['target']!r} is not one of the "
                                      f"task's evaluation targets "
                                      f"({', '.join(names) if len(names) > 1 else 'it has one'})")
    check_grid(config)


def check_grid(config: dict) -> None:
    """Resolves every job's options now, so a bad model, goal size or `set:` value stops the
    workflow before any job starts, with hflow's message naming the run and the key."""
    for run in grid_runs(config):
        for seeds in seed_groups(config):
            try:
                resolve(options=job_options(config, run, seeds))
            except ValueError as err:
                raise ConfigError(f"grid run {run.name}: {err}") from None


def job_arguments(config: dict, run: RunId, seeds: list[int]) -> str:
    """A job's options as `hflow train` arguments, each shell-quoted: --model, then one --set
    per key with its value as JSON (which the --set reader, YAML, reads back exactly)."""
    options = job_options(config, run, seeds)
    args = ["--model", options.pop("model")]
    for key, value in options.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    return " ".join(shlex.quote(a) for a in args)


# -- cost ---------------------------------------------------------------------------------

def seconds_per_step(model: str) -> float:
    return CPU_SECONDS_PER_STEP.get(model, CPU_SECONDS_PER_STEP["ours"])


def gpu_seconds_per_step(model: str) -> float:
    """GPU seconds per member env step with GPU_JOBS jobs sharing the GPU."""
    return 1 / GPU_MEMBER_STEPS_PER_S.get(model, GPU_MEMBER_STEPS_PER_S["ours"])


def _as_target(path: str) -> str:
    """`./figures//fig3.pdf`, `/abs/repo/figures/fig3.pdf` -> `figures/fig3.pdf`."""
    return os.path.normpath(os.path.relpath(path) if os.path.isabs(path) else path)


def target_figures(config: dict, targets: list[str]) -> list[str] | None:
    """What `snakemake TARGET ...` would build, as figure names for `plan` ('all' for the
    table, which aggregates every run): a target is a rule (all, runs, table2), a figure's
    name, or a file the analysis rules write (a figure, the table, a summary)."""
    if not targets or {"all", "runs"} & set(targets):
        return None
    figures_dir, out = config["figures_dir"].rstrip("/"), config["out"].rstrip("/")
    by_file = {f"{figures_dir}/{pattern.format(fig=fig)}": fig
               for fig in config["figures"] for pattern in FIGURE_FILES}
    by_file.update({f"{figures_dir}/{name}": "all" for name in TABLE_FILES})
    by_file.update({f"{out}/summary/{name}.parquet": name for name in [*config["figures"], "all"]})
    # a file target as Snakemake matches it: normalised, relative to the working directory
    by_file = {_as_target(path): fig for path, fig in by_file.items()}
    names = []
    for target in targets:
        if target in config["figures"]:
            names.append(target)
        elif target == "table2":
            names.append("all")
        elif _as_target(target) in by_file:
            names.append(by_file[_as_target(target)])
        else:
            raise ConfigError(f"target {target!r} is not a figure of this config "
                              f"({', '.join(config['figures'])}), all, runs, table2, or a file "
                              f"the workflow writes (e.g. {figures_dir}/"
                              f"{FIGURE_FILES[0].format(fig=next(iter(config['figures'])))})")
    return list(dict.fromkeys(names))


def plan(config: dict, figures: list[str] | None = None) -> list[dict]:
    """Per figure (and the whole grid, 'all'): runs, seed-runs, env steps, CPU hours."""
    names = figures or list(config["figures"])
    unknown = [f for f in names if f not in config["figures"] and f != "all"]
    if unknown:
        raise ConfigError(f"no figure named {', '.join(unknown)}; the config has "
                          f"{', '.join(config['figures'])} (or 'all')")
    n_seeds, steps = len(config["seeds"]), config["steps"]
    rows = []
    for name in names + ([] if "all" in names else ["all"]):
        runs = grid_runs(config) if name == "all" else figure_runs(config, name)
        cpu_h = sum(n_seeds * steps * seconds_per_step(r.model) for r in runs) / 3600
        gpu_h = sum(n_seeds * steps * gpu_seconds_per_step(r.model) for r in runs) / 3600
        rows.append({"target": name, "runs": len(runs), "jobs": len(runs) * len(
            seed_groups(config)), "seed_runs": len(runs) * n_seeds,
            "env_steps": len(runs) * n_seeds * steps, "cpu_hours": cpu_h, "gpu_hours": gpu_h})
    return rows


def plan_text(config: dict, figures: list[str] | None = None) -> str:
    lines = [f"{'target':<8} {'runs':>5} {'jobs':>5} {'seed-runs':>9} {'env steps':>16} "
             f"{'CPU core-hours':>15} {GPU_NAME + '-hours':>12}"]
    for r in plan(config, figures):
        lines.append(f"{r['target']:<8} {r['runs']:>5} {r['jobs']:>5} {r['seed_runs']:>9} "
                     f"{r['env_steps']:>16,} {r['cpu_hours']:>15,.2f} {r['gpu_hours']:>12,.1f}")
    rates = ", ".join(f"{m} {1 / s:.0f}" for m, s in CPU_SECONDS_PER_STEP.items())
    lines.append(f"CPU: one core per seed-run at the env steps/s that benchmarks/"
                 f"train_throughput.py measured\n     on the 2-core CI machine ({rates}; other "
                 f"presets as ours).\n{GPU_NAME}: {GPU_JOBS} jobs of 5 seeds sharing one GPU, "
                 f"{GPU_MEMBER_STEPS_PER_S['hiro']:,.0f} member env steps/s together (hiro, "
                 f"measured on one H200 node;\n     ours costed at 0.92 of it); see "
                 f"hflow/grid.py for the source.")
    return "\n".join(lines)
