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
from hflow.config import RESUMABLE_CHANGES, flatten
from hflow.io import atomic_path
from hflow.layout import RECORD
from hflow.metrics import METRIC_COLUMNS, read_metrics

# What every metrics.csv has; the others (losses, relabel health) may be missing from files
# of older hflow versions and read as NaN.
REQUIRED_COLUMNS = ("step", "eval_reward", "eval_success", "eval_distance")
# What may differ between the seeds of one run: their seeds, and what a resume may change.
SEED_KEYS = ("train.seeds", "train.device", *RESUMABLE_CHANGES)


def run_label(model: str, hi: int, lo: int) -> str:
    """The paper's legend label `{model}_{hi}_{lo}`, with the preset's display label."""
    return f"{get_preset(model).label}_{hi}_{lo}"


def run_id(model: str, hi: int, lo: int) -> str:
    """A run's identity in the summary: `{preset}_{hi}_{lo}`. Unlike the legend label it is
    unique (ours and ours_alg2 both draw as `ours_...`, as in the paper)."""
    return f"{model}_{hi}_{lo}"


def read_run(metrics_csv: str | Path) -> tuple[pd.DataFrame, dict]:
    """One seed's rows, labelled from the config.json beside them, and that config."""
    metrics_csv = Path(metrics_csv)
    record_path = metrics_csv.with_name(RECORD)
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
    steps = [r["step"] for r in rows]
    if len(set(steps)) != len(steps):
        twice = next(s for s in steps if steps.count(s) > 1)
        raise HflowError(f"{metrics_csv} holds step {twice} twice; one row per evaluation")
    # Every column of the file: tasks with several eval targets add per-target columns.
    frame = pd.DataFrame(rows)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise HflowError(f"{metrics_csv} lacks the columns {', '.join(missing)}")
    evals = [c for c in frame.columns if c.startswith("eval_")]
    bad = frame[evals].isna() | frame[evals].isin([float("inf"), float("-inf")])
    if bad.to_numpy().any():
        row, column = next((i, c) for i in frame.index for c in evals if bad.at[i, c])
        raise HflowError(f"{metrics_csv}: {column} = {frame.at[row, column]} at step "
                         f"{frame.at[row, 'step']}; an evaluation is a finite number (a "
                         f"damaged file, or a run that diverged)")
    for column in METRIC_COLUMNS:  # written by older hflow versions without it
        if column not in frame.columns:
            frame[column] = float("nan")
    ids = {"task": cfg["task"]["name"], "model": cfg["model"],
           "label": run_label(cfg["model"], goals["hi"], goals["lo"]), "hi": goals["hi"],
           "lo": goals["lo"], "run": run_id(cfg["model"], goals["hi"], goals["lo"]),
           "seed": record["seed"]}
    for i, (key, value) in enumerate(ids.items()):
        frame.insert(i, key, value)
    return frame, cfg


def _check_one_configuration(runs: list[tuple[Path, dict]]) -> None:
    """The seeds of one run id share its configuration (all but SEED_KEYS): seeds of two
    configurations under one label would draw as one curve."""
    first: dict[tuple, tuple[Path, dict]] = {}
    for path, cfg in runs:
        flat = {k: v for k, v in flatten(cfg).items() if k not in SEED_KEYS}
        key = (flat.get("task.name"), flat.get("model"), flat.get("task.hi"), flat.get("task.lo"))
        if key not in first:
            first[key] = (path, flat)
            continue
        other_path, other = first[key]
        differ = sorted(k for k in set(flat) | set(other) if flat.get(k) != other.get(k))
        if differ:
            raise HflowError(
                f"{path} and {other_path} are seeds of one run but of two configurations "
                f"(differ in " + ", ".join(f"{k}: {other.get(k)!r} vs {flat.get(k)!r}"
                                           for k in differ[:4])
                + "); aggregate each configuration on its own, or train them alike")


def aggregate(metrics_files: list[str | Path]) -> pd.DataFrame:
    if not metrics_files:
        raise HflowError("no metrics files to aggregate")
    read = [(Path(p), *read_run(p)) for p in metrics_files]
    _check_one_configuration([(path, cfg) for path, _, cfg in read])
    frame = pd.concat([f for _, f, _ in read], ignore_index=True)
    duplicated = frame.duplicated(["task", "model", "hi", "lo", "seed", "step"])
    if duplicated.any():
        first = frame[duplicated].iloc[0]
        raise HflowError(f"two metrics files hold {first['task']} {first['model']} "
                         f"hi={first['hi']} lo={first['lo']} seed={first['seed']}")
    return frame.sort_values(["task", "run", "seed", "step"], ignore_index=True)


def write_summary(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
