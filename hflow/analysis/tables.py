"""Table II: the paper's O/X model comparison (from the registry) and a results table.

The results table has one row per (task, run): the final success rate and average reward at
the last evaluation all seeds reached, as mean and 95% bootstrap CI over seeds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hflow.agents.registry import PRESETS, table2_markdown
from hflow.analysis.stats import bootstrap_ci, final_point
from hflow.io import write_text


def results(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (task, run), group in final_point(summary).groupby(["task", "run"], sort=True):
        success = bootstrap_ci(group["eval_success"].to_numpy())
        reward = bootstrap_ci(group["eval_reward"].to_numpy())
        rows.append({"task": task, "run": run, "model": group["model"].iloc[0],
                     "step": int(group["step"].iloc[0]), "seeds": len(group),
                     "success": success, "reward": reward})
    return pd.DataFrame(rows)


def _ci(values: tuple[float, float, float], digits: int) -> str:
    mean, low, high = values
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def results_markdown(table: pd.DataFrame) -> str:
    lines = ["| task | run | preset | steps | seeds | final success rate | final average reward |",
             "|---|---|---|---:|---:|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.task} | {r.run} | `{r.model}` | {r.step:,} | {r.seeds} | "
                     f"{_ci(r.success, 2)} | {_ci(r.reward, 1)} |")
    return "\n".join(lines)


def _tex(text: str) -> str:
    return text.replace("_", r"\_").replace("%", r"\%")


def table2_latex(table: pd.DataFrame) -> str:
    mark = {True: "O", False: "X"}
    out = [r"\begin{table}[t]", r"\centering", r"\caption{Model comparison}",
           r"\begin{tabular}{lcc}", r"\hline",
           r"Model & Off-policy correction & FDGM \\", r"\hline"]
    for p in PRESETS.values():
        if p.paper_name:
            out.append(f"{_tex(p.paper_name)} & {mark[p.off_policy_correction]} & "
                       f"{mark[p.fdgm]} \\\\")
    out += [r"\hline", r"\end{tabular}", r"\end{table}", "",
            r"\begin{table}[t]", r"\centering",
            r"\caption{Final success rate and average reward: mean [95\% bootstrap CI] over "
            r"seeds}",
            r"\begin{tabular}{llrrll}", r"\hline",
            r"Task & Run & Steps & Seeds & Success rate & Average reward \\", r"\hline"]
    for r in table.itertuples():
        out.append(f"{_tex(r.task)} & {_tex(r.run)} & {r.step} & {r.seeds} & "
                   f"{_ci(r.success, 2)} & {_ci(r.reward, 1)} \\\\")
    out += [r"\hline", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


def write_table2(summary: pd.DataFrame, md_path: str | Path, tex_path: str | Path) -> None:
    table = results(summary)
    md = ("# Table II\n\nModel comparison (from hflow's model registry):\n\n"
          + table2_markdown()
          + "\n\nResults at the last evaluation all seeds reached: mean [95% bootstrap CI] "
            "over seeds.\n\n" + results_markdown(table) + "\n")
    write_text(md_path, md)
    write_text(tex_path, table2_latex(table))
