"""Statistics over seeds with rliable (Agarwal et al., NeurIPS 2021).

Point estimates are the mean and the interquartile mean (IQM) over seeds; intervals are
rliable's stratified-bootstrap 95% confidence intervals (percentile method), with a fixed
random state so that regenerated figures and tables are identical. Scores are arrays
[seeds x tasks]: a run on one task is a [seeds x 1] array, for which the stratified bootstrap
is the plain bootstrap over seeds. Comparisons use rliable's probability of improvement,
P(X > Y), averaged over the tasks both were run on.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from rliable import library as rly
from rliable import metrics

REPS = 2000
LEVEL = 0.95
SEED = 0


def _estimates(scores, func, reps: int = REPS):
    """rliable's point estimate and CI of func(scores) (scores: array or tuple of arrays)."""
    # rliable's stratified resampling draws from NumPy's global generator (its random_state
    # reaches only arch's part), so seed that, and put it back afterwards.
    saved = np.random.get_state()
    np.random.seed(SEED)
    try:
        with warnings.catch_warnings():  # arch's notice about RandomState, which rliable passes
            warnings.simplefilter("ignore", FutureWarning)
            point, interval = rly.get_interval_estimates(
                {"x": scores}, func, reps=reps, confidence_interval_size=LEVEL,
                random_state=np.random.RandomState(SEED))
    finally:
        np.random.set_state(saved)
    return np.atleast_1d(point["x"]), np.atleast_2d(interval["x"])


def mean_and_iqm(values) -> dict[str, float]:
    """Mean and IQM of per-seed values, each with its 95% CI; NaNs dropped."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return dict.fromkeys(("mean", "mean_low", "mean_high", "iqm", "iqm_low", "iqm_high"),
                             np.nan)
    scores = v[:, None]
    if v.size == 1:
        point, interval = np.array([v[0], v[0]]), np.full((2, 2), v[0])
    else:
        point, interval = _estimates(scores, lambda x: np.array(
            [metrics.aggregate_mean(x), metrics.aggregate_iqm(x)]))
    return {"mean": point[0], "mean_low": interval[0, 0], "mean_high": interval[1, 0],
            "iqm": point[1], "iqm_low": interval[0, 1], "iqm_high": interval[1, 1]}


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """P(X > Y) with its 95% CI; x, y [seeds x tasks] (ties count half)."""
    point, interval = _estimates((x, y), metrics.probability_of_improvement)
    return float(point[0]), float(interval[0, 0]), float(interval[1, 0])


def curves(summary: pd.DataFrame, value: str, reps: int = REPS) -> pd.DataFrame:
    """Per (task, run, step): the mean of `value` over seeds with its 95% stratified-bootstrap
    CI (each step a stratum), and the number of seeds."""
    rows = []
    for (task, run), group in summary.groupby(["task", "run"], sort=True):
        table = group.pivot_table(index="seed", columns="step", values=value, dropna=False)
        complete = table.dropna(axis=1)  # steps every seed reached
        n = len(table)
        if complete.shape[1] == 0:
            continue
        scores = complete.to_numpy()
        if n > 1:
            point, interval = _estimates(scores, lambda x: x.mean(axis=0), reps)
        else:
            point, interval = scores[0], np.vstack([scores[0], scores[0]])
        for j, step in enumerate(complete.columns):
            rows.append({"task": task, "run": run, "step": step, "mean": point[j],
                         "ci_low": interval[0, j], "ci_high": interval[1, j], "n": n})
    return pd.DataFrame(rows, columns=["task", "run", "step", "mean", "ci_low", "ci_high", "n"])


def final_point(summary: pd.DataFrame) -> pd.DataFrame:
    """Each run's last evaluation that all its seeds reached."""
    last = summary.groupby(["task", "run", "seed"])["step"].max().groupby(
        ["task", "run"]).min().rename("final_step").reset_index()
    merged = summary.merge(last, on=["task", "run"])
    return merged[merged["step"] == merged["final_step"]].drop(columns="final_step")
