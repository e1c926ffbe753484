"""Mean and percentile-bootstrap confidence intervals over seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd

N_BOOT = 2000
LEVEL = 0.95


def bootstrap_ci(values, n_boot: int = N_BOOT, level: float = LEVEL,
                 seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `values` and its percentile-bootstrap CI.

    Deterministic (fixed seed), so regenerated figures and tables are identical. With one
    value the interval collapses to it; NaNs are dropped.
    """
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (np.nan, np.nan, np.nan)
    if v.size == 1:
        return (float(v[0]),) * 3
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(v.mean()), float(low), float(high)


def curves(summary: pd.DataFrame, value: str) -> pd.DataFrame:
    """Per (task, run, step): mean, ci_low, ci_high of `value` across seeds, and n seeds."""
    rows = []
    for (task, run, step), group in summary.groupby(["task", "run", "step"], sort=True):
        mean, low, high = bootstrap_ci(group[value].to_numpy())
        rows.append({"task": task, "run": run, "step": step, "mean": mean, "ci_low": low,
                     "ci_high": high, "n": len(group)})
    return pd.DataFrame(rows)


def final_point(summary: pd.DataFrame) -> pd.DataFrame:
    """Each run's last evaluation that all its seeds reached."""
    last = summary.groupby(["task", "run", "seed"])["step"].max().groupby(
        ["task", "run"]).min().rename("final_step").reset_index()
    merged = summary.merge(last, on=["task", "run"])
    return merged[merged["step"] == merged["final_step"]].drop(columns="final_step")
