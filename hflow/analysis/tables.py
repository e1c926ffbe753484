"""Table II: the paper's O/X model comparison (from the registry), a results table, and the
probability that the paper's model improves on its baseline in each figure.

Results: one row per (task, run): the final success rate and average reward at the last
evaluation all seeds reached, as mean and IQM over seeds with 95% stratified-bootstrap CIs
(rliable). Improvement: per figure, for each run of the paper's model and its baseline in the
same panels (HIRO or LSP with the same lo; Fig. 5's variant), rliable's probability of
improvement P(ours > baseline) of the final average reward, over the panels' tasks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hflow.agents.registry import PRESETS, table2_markdown, table2_rows
from hflow.analysis.aggregate import run_id
from hflow.analysis.stats import LEVEL, REPS, final_point, mean_and_iqm, probability_of_improvement
from hflow.io import write_text

CHALLENGER = "ours"  # the preset label of the paper's model (ours, ours_alg2)
BASELINES = ("hiro", "lsp", "variant")
RESULTS_CAPTION = (f"Final success rate and average reward at the last evaluation all seeds "
                   f"reached: mean and interquartile mean (IQM) over seeds, each with its "
                   f"{LEVEL:.0%} stratified-bootstrap confidence interval (rliable, {REPS} "
                   f"resamples).")
TARGETS_CAPTION = (f"Tasks evaluated at several targets (HIRO's three along the maze): the final "
                   f"success rate at each, mean over seeds with its {LEVEL:.0%} "
                   f"stratified-bootstrap CI.")
IMPROVEMENT_CAPTION = (f"Probability of improvement P(ours > baseline) of the final average "
                       f"reward (rliable; ties count half), over the tasks of each figure "
                       f"where both ran, with its {LEVEL:.0%} stratified-bootstrap CI. 0.5 "
                       f"means no difference.")


def results(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (task, run), group in final_point(summary).groupby(["task", "run"], sort=True):
        rows.append({"task": task, "run": run, "model": group["model"].iloc[0],
                     "step": int(group["step"].iloc[0]), "seeds": len(group),
                     "success": mean_and_iqm(group["eval_success"].to_numpy()),
                     "reward": mean_and_iqm(group["eval_reward"].to_numpy())})
    return pd.DataFrame(rows)


def target_results(summary: pd.DataFrame) -> pd.DataFrame:
    """For tasks evaluated at several targets: per (task, run) the final success at each."""
    targets = [c.removeprefix("eval_success_") for c in summary.columns
               if c.startswith("eval_success_")]
    rows = []
    for (task, run), group in final_point(summary).groupby(["task", "run"], sort=True):
        cells = {t: mean_and_iqm(group[f"eval_success_{t}"].to_numpy()) for t in targets
                 if group[f"eval_success_{t}"].notna().all()}
        if cells:
            rows.append({"task": task, "run": run, "step": int(group["step"].iloc[0]),
                         "seeds": len(group), "targets": cells})
    return pd.DataFrame(rows, columns=["task", "run", "step", "seeds", "targets"])


def target_markdown(table: pd.DataFrame) -> str:
    lines = []
    for task, rows in table.groupby("task", sort=True):
        names = list(rows["targets"].iloc[0])
        lines += [f"{task}:", "",
                  "| run | steps | seeds | " + " | ".join(
                      "success at (" + n.replace("m", "-").replace("_", ", ") + ")"
                      for n in names) + " |",
                  "|---|---:|---:|" + "---|" * len(names)]
        for r in rows.itertuples():
            lines.append(f"| {r.run} | {r.step:,} | {r.seeds} | " + " | ".join(
                _ci(r.targets[n], "mean", 2) for n in names) + " |")
        lines.append("")
    return "\n".join(lines).rstrip()


def improvements(summary: pd.DataFrame, figures: dict) -> pd.DataFrame:
    """Per figure and (ours run, baseline run): P(ours > baseline) over shared tasks."""
    final = final_point(summary)
    rows = []
    for fig, spec in figures.items():
        pairs: dict[tuple[str, str], list[str]] = {}
        for panel in spec["panels"]:
            runs = [(r["model"], run_id(r["model"], r["hi"], r["lo"]), r["lo"])
                    for r in panel["runs"]]
            for model, label, lo in runs:
                if PRESETS[model].label != CHALLENGER:
                    continue
                for base_model, base_label, base_lo in runs:
                    if PRESETS[base_model].label in BASELINES and base_lo == lo:
                        pairs.setdefault((label, base_label), []).append(panel["task"])
        for (label, base), tasks in pairs.items():
            tasks = sorted(set(tasks))
            x = _scores(final, tasks, label)
            y = _scores(final, tasks, base)
            if x is None or y is None:
                continue
            p, low, high = probability_of_improvement(x, y)
            rows.append({"figure": fig, "ours": label, "baseline": base, "tasks": len(tasks),
                         "p": p, "low": low, "high": high})
    return pd.DataFrame(rows, columns=["figure", "ours", "baseline", "tasks", "p", "low",
                                       "high"])


def _scores(final: pd.DataFrame, tasks: list[str], run: str) -> np.ndarray | None:
    """[seeds x tasks] final average rewards (seeds matched by order), or None if missing."""
    columns = []
    for task in tasks:
        values = final[(final["task"] == task) & (final["run"] == run)].sort_values("seed")
        if values.empty:
            return None
        columns.append(values["eval_reward"].to_numpy())
    n = min(len(c) for c in columns)
    return np.stack([c[:n] for c in columns], axis=1)


def _ci(stats: dict, which: str, digits: int) -> str:
    return (f"{stats[which]:.{digits}f} [{stats[which + '_low']:.{digits}f}, "
            f"{stats[which + '_high']:.{digits}f}]")


def results_markdown(table: pd.DataFrame) -> str:
    lines = ["| task | run | preset | steps | seeds | success: mean | success: IQM | "
             "average reward: mean | average reward: IQM |",
             "|---|---|---|---:|---:|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.task} | {r.run} | `{r.model}` | {r.step:,} | {r.seeds} | "
                     f"{_ci(r.success, 'mean', 2)} | {_ci(r.success, 'iqm', 2)} | "
                     f"{_ci(r.reward, 'mean', 1)} | {_ci(r.reward, 'iqm', 1)} |")
    return "\n".join(lines)


def improvements_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "(no figure has both the paper's model and a baseline)"
    lines = ["| figure | ours | baseline | tasks | P(ours > baseline) [95% CI] |",
             "|---|---|---|---:|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.figure} | {r.ours} | {r.baseline} | {r.tasks} | "
                     f"{r.p:.2f} [{r.low:.2f}, {r.high:.2f}] |")
    return "\n".join(lines)


def _tex(text: str) -> str:
    return text.replace("_", r"\_").replace("%", r"\%")


def table2_latex(table: pd.DataFrame, improvement: pd.DataFrame) -> str:
    out = [r"\begin{table}[t]", r"\centering", r"\caption{Model comparison}",
           r"\begin{tabular}{lcc}", r"\hline",
           r"Model & Off-policy correction & FDGM \\", r"\hline"]
    for name, correction, fdgm in table2_rows():
        out.append(f"{_tex(name)} & {correction} & {fdgm} \\\\")
    out += [r"\hline", r"\end{tabular}", r"\end{table}", "",
            r"\begin{table}[t]", r"\centering", f"\\caption{{{_tex(RESULTS_CAPTION)}}}",
            r"\begin{tabular}{llrrllll}", r"\hline",
            r"Task & Run & Steps & Seeds & Success (mean) & Success (IQM) & Reward (mean) & "
            r"Reward (IQM) \\", r"\hline"]
    for r in table.itertuples():
        out.append(f"{_tex(r.task)} & {_tex(r.run)} & {r.step} & {r.seeds} & "
                   f"{_ci(r.success, 'mean', 2)} & {_ci(r.success, 'iqm', 2)} & "
                   f"{_ci(r.reward, 'mean', 1)} & {_ci(r.reward, 'iqm', 1)} \\\\")
    out += [r"\hline", r"\end{tabular}", r"\end{table}", "",
            r"\begin{table}[t]", r"\centering", f"\\caption{{{_tex(IMPROVEMENT_CAPTION)}}}",
            r"\begin{tabular}{lllrl}", r"\hline",
            r"Figure & Ours & Baseline & Tasks & P(ours $>$ baseline) \\", r"\hline"]
    for r in improvement.itertuples():
        out.append(f"{_tex(r.figure)} & {_tex(r.ours)} & {_tex(r.baseline)} & {r.tasks} & "
                   f"{r.p:.2f} [{r.low:.2f}, {r.high:.2f}] \\\\")
    out += [r"\hline", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


def write_table2(summary: pd.DataFrame, figures: dict, md_path: str | Path,
                 tex_path: str | Path, html_path: str | Path | None = None) -> None:
    table = results(summary)
    per_target = target_results(summary)
    improvement = improvements(summary, figures)
    md = ("# Table II\n\nModel comparison (from hflow's model registry):\n\n"
          + table2_markdown() + "\n\n## Results\n\n" + RESULTS_CAPTION + "\n\n"
          + results_markdown(table) + "\n\n"
          + ("## Success at each evaluation target\n\n" + TARGETS_CAPTION + "\n\n"
             + target_markdown(per_target) + "\n\n" if not per_target.empty else "")
          + "## Probability of improvement\n\n"
          + IMPROVEMENT_CAPTION + "\n\n" + improvements_markdown(improvement) + "\n")
    write_text(md_path, md)
    write_text(tex_path, table2_latex(table, improvement))
    if html_path is not None:
        import markdown_it

        write_text(html_path, "<html><body>\n" + markdown_it.MarkdownIt().enable("table")
                   .render(md) + "</body></html>\n")
