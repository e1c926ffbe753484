"""Aggregation, rliable statistics, figures and tables on synthetic runs."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import squeeze
from pypdf import PdfReader

from hflow import HflowError
from hflow.analysis.aggregate import aggregate
from hflow.analysis.figures import plot_figure
from hflow.analysis.stats import (
    curves,
    final_scores,
    is_finding,
    mean_and_iqm,
    probability_of_improvement,
    sign_flip_p,
)
from hflow.analysis.tables import improvements, results, write_table2
from hflow.cli import main
from hflow.metrics import MetricsCSV


def _fake_run(root, task, model, hi, lo, seed, rewards):
    d = root / task / f"{model}_{hi}_{lo}" / f"seed{seed}"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({
        "config": {"model": model, "task": {"name": task}}, "seed": seed,
        "goal_space": {"hi": hi, "lo": lo}}))
    csv = MetricsCSV(d / "metrics.csv")
    for i, r in enumerate(rewards):
        csv.append({"step": 1000 * i, "eval_reward": r, "eval_success": float(r > -50),
                    "eval_distance": -r / 10})
    return d / "metrics.csv"


@pytest.fixture
def runs(tmp_path):
    files = []
    for seed, offset in enumerate((0.0, 10.0, 20.0)):
        files.append(_fake_run(tmp_path, "AntPushSingle", "ours", 8, 15, seed,
                               [-100 + offset, -60 + offset, -30 + offset]))
        files.append(_fake_run(tmp_path, "AntPushSingle", "hiro", 8, 15, seed,
                               [-100 - offset, -90 - offset]))
    return files


def test_mean_and_iqm_match_a_hand_computation():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 100.0])
    stats = mean_and_iqm(values)
    assert stats["mean"] == pytest.approx(128 / 8)
    assert stats["iqm"] == pytest.approx((3 + 4 + 5 + 6) / 4)  # the middle half
    for est in ("mean", "iqm"):
        assert stats[f"{est}_low"] <= stats[est] <= stats[f"{est}_high"]
    assert stats["iqm_high"] < stats["mean_high"]  # IQM ignores the outlier
    assert mean_and_iqm(values) == stats  # fixed random state: identical tables
    assert mean_and_iqm([5.0])["iqm_low"] == 5.0


def test_probability_of_improvement_matches_a_hand_computation():
    x = np.array([[1.0], [2.0], [3.0]])  # 3 seeds, 1 task
    y = np.array([[0.0], [1.0], [5.0]])
    # pairs x > y: 1>0, 2>0, 2>1, 3>0, 3>1 -> 5; ties 1=1 -> 0.5; of 9
    p, low, high = probability_of_improvement(x, y)
    assert p == pytest.approx(5.5 / 9)
    assert 0 <= low <= p <= high <= 1
    two_tasks = probability_of_improvement(np.hstack([x, x + 10]), np.hstack([y, y]))
    assert two_tasks[0] == pytest.approx((5.5 / 9 + 1.0) / 2)  # mean over tasks


def test_curve_bands_use_the_table_estimator(runs):
    band = curves(aggregate(runs), "eval_reward")
    ours = band[band["run"] == "ours_8_15"].set_index("step")
    assert ours.loc[2000, "mean"] == pytest.approx(-20.0)  # -30 + (0, 10, 20) / 3 seeds
    assert (ours["ci_low"] <= ours["mean"]).all() and (ours["mean"] <= ours["ci_high"]).all()


def test_aggregate_is_tidy_and_labelled(runs):
    frame = aggregate(runs)
    assert len(frame) == 3 * 3 + 3 * 2
    assert set(frame["run"]) == {"ours_8_15", "hiro_8_15"}
    with pytest.raises(HflowError, match="two metrics files hold"):
        aggregate(runs + runs[:1])


def test_final_scores_average_the_last_evaluations_all_seeds_reached(runs):
    summary = aggregate(runs)
    final = final_scores(summary).set_index(["run", "seed"])
    assert final.loc[("ours_8_15", 1), "step"] == 2000
    assert final.loc[("hiro_8_15", 1), "step"] == 1000
    assert final.loc[("ours_8_15", 1), "evaluations"] == 3  # hiro has only 2
    assert final.loc[("ours_8_15", 1), "eval_reward"] == pytest.approx((-90 - 50 - 20) / 3)
    assert final.loc[("hiro_8_15", 2), "eval_reward"] == pytest.approx((-120 - 110) / 2)
    last = final_scores(summary, last=1).set_index(["run", "seed"])
    assert last.loc[("ours_8_15", 0), "eval_reward"] == -30
    # a seed that stopped early: the final evaluations are those every seed reached
    cut = summary[~((summary["run"] == "ours_8_15") & (summary["seed"] == 2)
                    & (summary["step"] == 2000))]
    assert set(final_scores(cut, last=1).query("run == 'ours_8_15'")["step"]) == {1000}
    table = results(summary)
    ours = table[table["run"] == "ours_8_15"].iloc[0]
    assert ours["reward"]["mean"] == pytest.approx(-190 / 3 + 10) and ours["seeds"] == 3


def test_sign_flip_test_is_exact():
    """Hand counts over the 2^5 sign assignments."""
    assert sign_flip_p([1, 1, 1, 1, 1]) == pytest.approx(2 / 32)  # the smallest p at n = 5
    # |sum| >= 1.55 only for the observed signs, the all-positive ones, and their mirrors
    assert sign_flip_p([0.40, 0.15, 0.30, 0.80, -0.10]) == pytest.approx(4 / 32)
    assert sign_flip_p([0, 0, 0]) == 1.0
    assert sign_flip_p([1.0] * 10) == pytest.approx(2 / 1024)
    assert not is_finding(0.05, 0.59, 0.0625)  # a CI that excludes 0 is not enough
    assert not is_finding(-0.1, 0.5, 0.01)
    assert is_finding(0.1, 0.5, 0.01) and is_finding(-0.5, -0.1, 0.002)


def test_figure_has_a_page_per_measure_and_rejects_missing_runs(runs, tmp_path):
    frame = aggregate(runs)
    spec = {"title": "t", "panels": [{"task": "AntPushSingle", "runs": [
        {"model": "ours", "hi": 8, "lo": 15, "color": "green"},
        {"model": "hiro", "hi": 8, "lo": 15}]}]}
    written = plot_figure(frame, spec, tmp_path / "f.pdf")
    assert len(PdfReader(written[0]).pages) == 4 and len(written) == 5  # the PDF, 4 PNGs
    assert [p.name for p in written[1:]] == ["f.png", "f_success.png", "f_low.png", "f_low_xy.png"]
    # a summary aggregated before a measure existed draws its page empty, without error
    older = frame.drop(columns=["low_subgoal_xy_progress"])
    assert len(PdfReader(plot_figure(older, spec, tmp_path / "old.pdf")[0]).pages) == 4
    spec["panels"][0]["runs"].append({"model": "lsp", "hi": 8, "lo": 15})
    with pytest.raises(HflowError, match="no results for: AntPushSingle lsp hi=8 lo=15"):
        plot_figure(frame, spec, tmp_path / "g.pdf")
    with pytest.raises(HflowError, match="panel 0 run 0 lacks lo"):
        plot_figure(frame, {"panels": [{"task": "AntPushSingle",
                                        "runs": [{"model": "ours", "hi": 8}]}]}, tmp_path / "h")


def test_tables_and_cli(runs, tmp_path, capsys):
    summary = tmp_path / "s.parquet"
    assert main(["aggregate", *map(str, runs), "-o", str(summary)]) == 0
    assert len(pd.read_parquet(summary)) == 15
    figures = {"fig": {"panels": [{"task": "AntPushSingle", "runs": [
        {"model": "ours", "hi": 8, "lo": 15}, {"model": "hiro", "hi": 8, "lo": 15}]}]}}
    write_table2(pd.read_parquet(summary), figures, tmp_path / "t.md", tmp_path / "t.tex",
                 tmp_path / "t.html")
    md = squeeze((tmp_path / "t.md").read_text())
    assert "| fig | ours_8_15 | hiro_8_15 | 1 |" in md
    assert "<table>" in (tmp_path / "t.html").read_text()
    gain = improvements(pd.read_parquet(summary), figures).iloc[0]
    assert gain["p"] == pytest.approx(1.0)  # every final ours (-30..-10) beats hiro (<= -90)
    assert "| HIRO | O | X |" in md and "| AntPushSingle | ours_8_15 | `ours` | 2,000 | 3 |" in md
    assert "ours\\_8\\_15" in (tmp_path / "t.tex").read_text()
    spec = json.dumps(next(iter(figures.values())))  # a good spec: the summary is what's wrong
    assert main(["figures", "--summary", str(tmp_path / "none.parquet"), "--spec", spec,
                 "-o", str(tmp_path / "x.pdf")]) == 2
    assert "run `hflow aggregate` first" in capsys.readouterr().err


def _fake_maze_run(root, model, seed, success_8_0, success_0_8):
    """A PointMazeMulti run with HIRO's per-target columns (the headline is (0, 8))."""
    d = root / "PointMazeMulti" / f"{model}_2_3" / f"seed{seed}"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({
        "config": {"model": model, "task": {"name": "PointMazeMulti"}}, "seed": seed,
        "goal_space": {"hi": 2, "lo": 3}}))
    extra = tuple(f"{m}_{t}" for t in ("8_0", "8_8", "0_8")
                  for m in ("eval_reward", "eval_success", "eval_distance"))
    csv = MetricsCSV(d / "metrics.csv", extra_columns=extra)
    for i, (a, b) in enumerate(zip(success_8_0, success_0_8)):
        row = {"step": 1000 * i, "eval_reward": -100.0 * (1 - b), "eval_success": b,
               "eval_distance": 5 * (1 - b)}
        for name, value in (("8_0", a), ("8_8", 0.0), ("0_8", b)):
            row |= {f"eval_reward_{name}": -100.0 * (1 - value),
                    f"eval_success_{name}": value, f"eval_distance_{name}": 5 * (1 - value)}
        csv.append(row)
    return d / "metrics.csv"


def test_panels_draw_one_target_and_tables_report_each(tmp_path):
    files = [_fake_maze_run(tmp_path, model, seed, [0.0, 1.0], [0.0, 0.2 * (model == "ours")])
             for model in ("ours", "ours_alg2") for seed in (0, 1)]
    frame = aggregate(files)
    # ours and ours_alg2 share the paper's label but stay two runs
    assert set(frame["run"]) == {"ours_2_3", "ours_alg2_2_3"}
    assert set(frame["label"]) == {"ours_2_3"}
    runs = [{"model": "ours", "hi": 2, "lo": 3}, {"model": "ours_alg2", "hi": 2, "lo": 3}]
    spec = {"panels": [{"task": "PointMazeMulti", "target": "8_0", "runs": runs},
                       {"task": "PointMazeMulti", "runs": runs}]}
    plot_figure(frame, spec, tmp_path / "f.pdf")
    assert curves(frame, "eval_success_8_0")["mean"].max() == 1.0
    spec["panels"][0]["target"] = "4_4"
    with pytest.raises(HflowError, match="target='4_4' has no column eval_success_4_4; "
                                         "targets in the summary: 0_8, 8_0, 8_8"):
        plot_figure(frame, spec, tmp_path / "g.pdf")
    write_table2(frame, {"point": {"panels": spec["panels"][1:]}}, tmp_path / "t.md",
                 tmp_path / "t.tex")
    md = squeeze((tmp_path / "t.md").read_text())
    assert "## Success at each evaluation target" in md
    assert ("| run | steps | seeds | success at (8, 0) | success at (8, 8) | "
            "success at (0, 8) |") in md
    # final: the mean of both evaluations (fewer than FINAL_EVALUATIONS exist)
    assert ("| ours_2_3 | 1,000 | 2 | 0.50 [0.50, 0.50] | 0.00 [0.00, 0.00] | "
            "0.10 [0.10, 0.10] |") in md
    assert "| ours_alg2_2_3 | 1,000 | 2 | 0.50 [0.50, 0.50] | 0.00 [0.00, 0.00] | 0.00" in md


def test_analysis_reads_metrics_without_torch(runs, tmp_path):
    """Aggregation, statistics, figures and tables import neither torch nor MuJoCo."""
    import os
    import subprocess
    import sys

    blocked = tmp_path / "blocked"
    for name in ("torch", "mujoco"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} blocked')\n")
    code = ("import sys; from hflow.analysis.aggregate import aggregate; "
            "import hflow.analysis.figures, hflow.analysis.tables; "
            "print(len(aggregate(sys.argv[1:])))")
    done = subprocess.run([sys.executable, "-c", code, *map(str, runs)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(blocked)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "15"


def test_paired_differences_and_relabel_health(runs):
    """ours minus hiro at the same seeds (final values: ours up to step 2000, hiro up to 1000;
    per run), with the exact test, and the accounting table shows '-' for columns a run did
    not log."""
    from hflow.analysis.tables import (
        health_markdown,
        health_results,
        paired_differences,
        paired_markdown,
    )

    summary = aggregate(runs)
    summary["high_segments_clipped"] = np.where(summary["model"] == "ours", 0.25, np.nan)
    figures = {"fig3": {"panels": [{"task": "AntPushSingle", "runs": [
        {"model": "ours", "hi": 8, "lo": 15}, {"model": "hiro", "hi": 8, "lo": 15}]}]}}
    paired = paired_differences(summary, figures)
    final = final_scores(summary)
    by_seed = {run: final[final["run"] == run].set_index("seed")["eval_success"]
               for run in ("ours_8_15", "hiro_8_15")}
    expected = (by_seed["ours_8_15"] - by_seed["hiro_8_15"]).mean()
    assert len(paired) == 1 and paired["seeds"].iloc[0] == 3
    assert paired["mean"].iloc[0] == pytest.approx(expected)
    assert paired["low"].iloc[0] <= expected <= paired["high"].iloc[0]
    assert paired["p"].iloc[0] == pytest.approx(2 / 8)  # 3 seeds, all one way: 2 of 2^3
    assert not paired["finding"].iloc[0]  # 3 seeds can never make one
    assert "| ours_8_15 | hiro_8_15 | 3 |" in squeeze(paired_markdown(paired))
    health = squeeze(health_markdown(health_results(summary)))
    assert "| AntPushSingle | ours_8_15 | 3 | - | 0.250 |" in health
    assert "| AntPushSingle | hiro_8_15 | 3 | - | - |" in health


def test_tables_render_empty_when_no_run_has_a_final_point(runs, tmp_path):
    """An empty summary (nothing evaluated yet) gives tables with their headers, not a
    KeyError from a column-less frame."""
    empty = aggregate(runs).iloc[0:0]
    assert list(results(empty).columns) == ["task", "run", "model", "step", "seeds", "success",
                                            "reward"]
    figures = {"fig": {"panels": [{"task": "AntPushSingle", "runs": [
        {"model": "ours", "hi": 8, "lo": 15}, {"model": "hiro", "hi": 8, "lo": 15}]}]}}
    write_table2(empty, figures, tmp_path / "t.md", tmp_path / "t.tex")
    md = squeeze((tmp_path / "t.md").read_text())
    assert "| task | run | preset | steps | seeds | success: mean |" in md
    assert "## Relabel accounting" in md and r"\begin{tabular}" in (tmp_path / "t.tex").read_text()
