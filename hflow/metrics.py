"""The one way hflow writes metrics: a CSV per seed, one row per evaluation point.

Columns (METRIC_COLUMNS): step; eval_reward (the paper's "average reward": mean over eval
episodes of the undiscounted sum of extrinsic reward, which HIRO's code logs as
`average_meta_reward`; its `average_reward` is the low level's intrinsic sum); eval_success
(fraction of eval episodes whose final distance is below the task's threshold);
eval_distance (mean final distance); train_return (mean extrinsic return of training
episodes finished since the last row); the low level's own task over the training steps since
the last row (LOW_LEVEL_METRICS: `low_intrinsic_reward`, its mean reward -||s + g - s'|| per
env step; `low_subgoal_distance_left`, the summed distance to the subgoal at the end of each
c-step segment over the summed distance at its start, 0 = every subgoal reached, 1 = no
closer; `low_subgoal_reached`, the share of segments that end within
`low.subgoal_reached_within` of their subgoal; `low_subgoal_xy_progress`, the mean distance a
segment covers toward its subgoal's x, y, in the task's length units: it sees a low level that
starts to walk toward its subgoals long before the distance left over all elements moves,
which for the Ant the joints' own motion dominates); the updates' losses and the relabel
accounting (UPDATE_METRICS), averaged since the last row; steps_per_s (env
steps per second of this run; a group of K seeds steps K times that); wall_s (seconds since
the run started, resumes included). Tasks with several eval targets add
`eval_reward_<target>`, `eval_success_<target>` and `eval_distance_<target>` per target
(e.g. `eval_success_0_16`) after these columns; the unsuffixed ones are the headline
target's. The losses are collected by `hflow.loss_log` (torch); this module reads and writes the
CSV only, so the analysis reads metrics without torch.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from hflow import HflowError
from hflow.io import write_text

# What each level's update logs (hflow.agents.level), declared here once per level and written
# as `<level>_<name>` columns: its losses, which must stay finite, then, for the high level,
# what its relabel did (HierarchicalAgent.relabel_accounting), NaN where that is undefined (no
# segment replaced; no flow inverse).
LEVEL_LOSSES = {"low": ("critic", "actor"), "high": ("critic", "actor")}
RELABEL_ACCOUNTING = ("segments_relabelled", "segments_clipped", "segments_kept",
                      "relabel_shift", "relabel_out_of_range", "relabelled_at_bound",
                      "stored_round_trip_error", "saturated")
LEVEL_METRICS = {"low": LEVEL_LOSSES["low"], "high": (*LEVEL_LOSSES["high"], *RELABEL_ACCOUNTING)}
LOSSES = tuple(f"{level}_{name}" for level, names in LEVEL_LOSSES.items() for name in names)
RELABEL_METRICS = tuple(f"high_{name}" for name in RELABEL_ACCOUNTING)
UPDATE_METRICS = (*LOSSES, *RELABEL_METRICS)
# The low level's own task, from the training steps (hflow.train.LowLevelTally).
LOW_LEVEL_METRICS = ("low_intrinsic_reward", "low_subgoal_distance_left", "low_subgoal_reached",
                     "low_subgoal_xy_progress")
METRIC_COLUMNS = ("step", "eval_reward", "eval_success", "eval_distance", "train_return",
                  *LOW_LEVEL_METRICS, *UPDATE_METRICS, "steps_per_s", "wall_s")
TIMING_COLUMNS = ("steps_per_s", "wall_s")


class NonFiniteLossError(HflowError):
    pass


class MetricsCSV:
    """Rows kept in memory and the whole file rewritten atomically on every append."""

    def __init__(self, path: str | Path, extra_columns: tuple[str, ...] = ()):
        self.path = Path(path)
        self.columns = (*METRIC_COLUMNS, *extra_columns)
        self.rows: list[dict] = []

    def restore(self, rows: list[dict]) -> None:
        """Back to a checkpoint's rows (a file that ran ahead of it is rewritten now)."""
        self.rows = [dict(r) for r in rows]
        self.write()

    def append(self, row: dict) -> None:
        self.rows.append({c: row.get(c, math.nan) for c in self.columns})
        self.write()

    def write(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: _fmt(v) for k, v in r.items()})
        write_text(self.path, buffer.getvalue())


def _fmt(value) -> str:
    if isinstance(value, int):
        return str(value)
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(
        float(value))


def read_metrics(path: str | Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as f:  # a BOM is not part of `step`
        return [{k: (int(v) if k == "step" else float(v) if v != "" else math.nan)
                 for k, v in row.items()} for row in csv.DictReader(f)]
