"""All runs' metrics in one tidy table: one row per (run, seed, eval point).

Each `seed<N>/metrics.csv` is read with the `config.json` beside it, which says what the run
was (task, preset, resolved hi and lo, seed), so the table never depends on directory names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hflow import HflowError
from hflow.agents.registry import get_preset
from hflow.io import atomic_path
from hflow.metrics import METRIC_COLUMNS, read_metrics

# What every metrics.csv has; the others (losses, relabel health) may be missing from files
# of older hflow versions and read as NaN.
REQUIRED_COLUMNS = ("step", "eval_reward", "eval_success", "eval_distance")


def run_label(model: str, hi: int, lo: int) -> str:
    """The paper's legend label `{model}_{hi}_{lo}`, with the preset's display label."""
    return f"{get_preset(model).label}_{hi}_{lo}"


def run_id(model: str, hi: int, lo: int) -> str:
    """A run's identity in the summary: `{preset}_{hi}_{lo}`. Unlike the legend label it is
    unique (ours and ours_alg2 both draw as `ours_...`, as in the paper)."""
    return f"{model}_{hi}_{lo}"


def read_run(metrics_csv: str | Path) -> pd.DataFrame:
    metrics_csv = Path(metrics_csv)
    record_path = metrics_csv.with_name("config.json")
    if not metrics_csv.is_file():
        raise HflowError(f"{metrics_csv} does not exist")
    if not record_path.exists():
        raise HflowError(f"{metrics_csv} has no config.json beside it")
    try:
        record = json.loads(record_path.read_text())
        cfg, goals = record["config"], record["goal_space"]
    except (ValueError, KeyError, TypeError) as err:
        raise HflowError(f"{record_path} is not a run record hflow wrote ({err})") from None
    try:
        rows = read_metrics(metrics_csv)
    except (ValueError, TypeError) as err:  # a truncated row (None) or a non-number
        raise HflowError(f"{metrics_csv} is not a metrics file hflow wrote: {err}") from None
    if not rows:
        raise HflowError(f"{metrics_csv} has no rows")
    # Every column of the file: tasks with several eval targets add per-target columns.
    frame = pd.DataFrame(rows)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise HflowError(f"{metrics_csv} lacks the columns {', '.join(missing)}")
    for column in METRIC_COLUMNS:  # written by older hflow versions without it
        if column not in frame.columns:
            frame[column] = float("nan")
    ids = {"task": cfg["task"]["name"], "model": cfg["model"],
           "label": run_label(cfg["model"], goals["hi"], goals["lo"]), "hi": goals["hi"],
           "lo": goals["lo"], "run": run_id(cfg["model"], goals["hi"], goals["lo"]),
           "seed": record["seed"]}
    for i, (key, value) in enumerate(ids.items()):
        frame.insert(i, key, value)
    return frame


def aggregate(metrics_files: list[str | Path]) -> pd.DataFrame:
    if not metrics_files:
        raise HflowError("no metrics files to aggregate")
    frame = pd.concat([read_run(p) for p in metrics_files], ignore_index=True)
    duplicated = frame.duplicated(["task", "model", "hi", "lo", "seed", "step"])
    if duplicated.any():
        first = frame[duplicated].iloc[0]
        raise HflowError(f"two metrics files hold {first['task']} {first['model']} "
                         f"hi={first['hi']} lo={first['lo']} seed={first['seed']}")
    return frame.sort_values(["task", "run", "seed", "step"], ignore_index=True)


def write_summary(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
