"""Statistics over seeds with rliable (Agarwal et al., NeurIPS 2021).

Point estimates are the mean and the interquartile mean (IQM) over seeds; intervals are
rliable's stratified-bootstrap 95% confidence intervals (percentile method), with a fixed
random state so that regenerated figures and tables are identical. Scores are arrays
[seeds x tasks]: a run on one task is a [seeds x 1] array, for which the stratified bootstrap
is the plain bootstrap over seeds. Comparisons use rliable's probability of improvement,
P(X > Y), averaged over the tasks both were run on.

A seed's final performance is the mean of its last FINAL_EVALUATIONS evaluations that all the
run's seeds reached (one evaluation is noisy: a seed's success moves by a quarter between
consecutive ones). A paired comparison at the same seeds adds an exact sign-flip permutation
test of the mean difference (scipy): with n seeds its smallest two-sided p is 2 / 2^n, 0.0625
at n = 5, so five seeds can never make a finding at the 5% level. `is_finding` is the one rule
for calling a difference a finding: the bootstrap CI excludes 0 and the exact p < 0.05.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from rliable import library as rly
from rliable import metrics
from scipy import stats as scipy_stats

REPS = 2000
LEVEL = 0.95
SEED = 0
FINAL_EVALUATIONS = 3  # evaluations averaged into a seed's final performance
ALPHA = 0.05  # the exact test's level for a finding


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


def final_scores(summary: pd.DataFrame, last: int = FINAL_EVALUATIONS) -> pd.DataFrame:
    """Per (task, run, seed): every numeric column's mean over the run's last `last`
    evaluations that all its seeds reached (NaNs left out). `step` is the last of them and
    `evaluations` how many were averaged (fewer where the run has fewer)."""
    keys = ["task", "run", "seed"]
    rows = []
    for _, group in summary.groupby(["task", "run"], sort=True):
        seeds = group["seed"].nunique()
        per_step = group.groupby("step")["seed"].nunique()
        steps = per_step[per_step == seeds].index.sort_values()[-last:]
        if len(steps) == 0:
            continue
        chosen = group[group["step"].isin(steps)]
        numeric = chosen.select_dtypes("number").columns.difference(["seed", "step", "hi",
                                                                       "lo"])
        means = chosen.groupby("seed")[list(numeric)].mean()
        ids = chosen.groupby("seed")[[c for c in chosen.columns
                                      if c not in numeric and c != "seed"]].first()
        frame = ids.join(means).reset_index()
        frame["step"], frame["evaluations"] = int(steps[-1]), len(steps)
        rows.append(frame)
    if not rows:
        return summary.iloc[0:0].assign(evaluations=pd.Series(dtype=int))
    return pd.concat(rows, ignore_index=True).sort_values(keys, ignore_index=True)


def sign_flip_p(differences) -> float:
    """Exact two-sided p of the paired sign-flip permutation test: the share of the 2^n sign
    assignments whose mean difference is at least as far from 0 as the observed one."""
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return float("nan")
    if not np.any(d):
        return 1.0
    result = scipy_stats.permutation_test((d,), np.mean, permutation_type="samples",
                                          n_resamples=np.inf, alternative="two-sided")
    return float(result.pvalue)


def is_finding(low: float, high: float, p: float) -> bool:
    """A difference is a finding only where its CI excludes 0 and the exact test agrees."""
    return bool((low > 0 or high < 0) and p < ALPHA)
