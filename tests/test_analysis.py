"""Aggregation, bootstrap statistics, figures and tables on synthetic runs."""

import json

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader

from hflow import HflowError
from hflow.analysis.aggregate import aggregate
from hflow.analysis.figures import plot_figure
from hflow.analysis.stats import bootstrap_ci, final_point
from hflow.analysis.tables import results, write_table2
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
        csv.append({"step": 1000 * i, "eval_reward": r, "eval_success": float(r > -50)})
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


def test_bootstrap_ci_brackets_the_mean_and_is_deterministic():
    values = np.array([1.0, 2.0, 3.0, 10.0])
    mean, low, high = bootstrap_ci(values)
    assert mean == 4.0 and low < mean < high
    assert (low, high) == bootstrap_ci(values)[1:]
    assert bootstrap_ci([5.0]) == (5.0, 5.0, 5.0)
    wide = bootstrap_ci(np.array([0.0, 100.0]))
    assert wide[1] == 0.0 and wide[2] == 100.0


def test_aggregate_is_tidy_and_labelled(runs):
    frame = aggregate(runs)
    assert len(frame) == 3 * 3 + 3 * 2
    assert set(frame["run"]) == {"ours_8_15", "hiro_8_15"}
    with pytest.raises(HflowError, match="two metrics files hold"):
        aggregate(runs + runs[:1])


def test_final_point_is_the_last_step_all_seeds_reached(runs):
    final = final_point(aggregate(runs))
    assert set(final.groupby("run")["step"].max()) == {2000, 1000}
    table = results(aggregate(runs))
    ours = table[table["run"] == "ours_8_15"].iloc[0]
    assert ours["reward"][0] == pytest.approx(-20.0) and ours["seeds"] == 3


def test_figure_has_two_pages_and_rejects_missing_runs(runs, tmp_path):
    frame = aggregate(runs)
    spec = {"title": "t", "panels": [{"task": "AntPushSingle", "runs": [
        {"model": "ours", "hi": 8, "lo": 15, "color": "green"},
        {"model": "hiro", "hi": 8, "lo": 15}]}]}
    written = plot_figure(frame, spec, tmp_path / "f.pdf")
    assert len(PdfReader(written[0]).pages) == 2 and len(written) == 3
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
    write_table2(pd.read_parquet(summary), tmp_path / "t.md", tmp_path / "t.tex")
    md = (tmp_path / "t.md").read_text()
    assert "| HIRO | O | X |" in md and "| AntPushSingle | ours_8_15 | `ours` | 2,000 | 3 |" in md
    assert "ours\\_8\\_15" in (tmp_path / "t.tex").read_text()
    assert main(["figures", "--summary", str(tmp_path / "none.parquet"), "--spec", "{}",
                 "-o", str(tmp_path / "x.pdf")]) == 2
    assert "run `hflow aggregate` first" in capsys.readouterr().err
