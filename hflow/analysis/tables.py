"""Table II: the paper's O/X model comparison (from the registry), a results table, and the
probability that the paper's model improves on its baseline in each figure.

Results: one row per (task, run): the final success rate and average reward at the last
evaluation all seeds reached, as mean and IQM over seeds with 95% stratified-bootstrap CIs
(rliable). Relabel accounting: what the same runs' corrections did per sampled segment, a
seed's value the mean of its rows at those last evaluations (each row covers the interval
before it), mean over seeds. Paired differences: in each panel, the paper's
model minus every other run at the same seeds, final success, mean with its bootstrap CI.
Improvement: per figure, for each run of the paper's model and its baseline in the same
panels (HIRO or LSP with the same lo; Fig. 5's variant), rliable's probability of improvement
P(ours > baseline) of the final average reward, over the panels' tasks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hflow.agents.registry import PRESETS, table2_markdown, table2_rows
from hflow.analysis.aggregate import run_id
from hflow.analysis.stats import (
    ALPHA,
    FINAL_EVALUATIONS,
    LEVEL,
    REPS,
    final_scores,
    is_finding,
    mean_and_iqm,
    probability_of_improvement,
    sign_flip_p,
)
from hflow.io import write_text
from hflow.metrics import RELABEL_ACCOUNTING

CHALLENGER = "ours"  # the preset label of the paper's model (ours, ours_alg2)
BASELINES = ("hiro", "lsp", "variant")
FINAL = (f"a seed's final value is the mean of its last {FINAL_EVALUATIONS} evaluations that "
         f"all the run's seeds reached ('steps': the last of them)")
RESULTS_CAPTION = (f"Final success rate and average reward ({FINAL}): mean and interquartile "
                   f"mean (IQM) over seeds, each with its {LEVEL:.0%} stratified-bootstrap "
                   f"confidence interval (rliable, {REPS} resamples).")
TARGETS_CAPTION = (f"Tasks evaluated at several targets (HIRO's three along the maze): the final "
                   f"success rate at each ({FINAL}), mean over seeds with its {LEVEL:.0%} "
                   f"stratified-bootstrap CI.")
IMPROVEMENT_CAPTION = (f"Probability of improvement P(ours > baseline) of the final average "
                       f"reward (rliable; ties count half), over the tasks of each figure "
                       f"where both ran, with its {LEVEL:.0%} stratified-bootstrap CI. 0.5 "
                       f"means no difference.")


def results(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (task, run), group in final_scores(summary).groupby(["task", "run"], sort=True):
        rows.append({"task": task, "run": run, "model": group["model"].iloc[0],
                     "step": int(group["step"].iloc[0]), "seeds": len(group),
                     "success": mean_and_iqm(group["eval_success"].to_numpy()),
                     "reward": mean_and_iqm(group["eval_reward"].to_numpy())})
    return pd.DataFrame(rows, columns=["task", "run", "model", "step", "seeds", "success",
                                       "reward"])


# The high level's relabel accounting (hflow.metrics.RELABEL_ACCOUNTING), as the table heads it
RELABEL_LABELS = {"segments_relabelled": "relabelled", "segments_clipped": "clipped",
                  "segments_kept": "kept", "relabel_shift": "shift",
                  "relabel_out_of_range": "out of range",
                  "relabelled_at_bound": "at bound (replaced)",
                  "stored_round_trip_error": "stored round trip", "saturated": "saturated"}
HEALTH = {f"high_{name}": RELABEL_LABELS[name] for name in RELABEL_ACCOUNTING}
HEALTH_CAPTION = (f"Relabel accounting over the last {FINAL_EVALUATIONS} evaluation intervals "
                  "(a seed's value: the mean of its metrics.csv rows at the evaluations its final "
                  "success averages), mean over seeds (docs/interpretation.md). Each sampled "
                  "segment counts once: its goal replaced by the correction's result as it "
                  "came (relabelled), by that result clipped into the subgoal range "
                  "(clipped), or left as stored "
                  "(kept: the flow's `outside_range=keep` fallback, HIRO picking the stored "
                  "candidate, or no correction). Then: mean distance between stored and "
                  "training goals; share of the correction's goal elements outside the range "
                  "before clipping or fallback; share of goal elements at the bound among "
                  "replaced segments; for the flow's inverse, the mean max error of "
                  "f(g~; stored condition) against the stored value on the relabelled "
                  "segments; share of the low level's noise-free action elements in the "
                  "saturated squash. '-': not defined for the run (no segment replaced, no "
                  "flow inverse) or a column newer than the code that trained it.")
PAIRED_CAPTION = (f"Paired differences at the same seeds: final success of the paper's model "
                  f"minus the other run's ({FINAL}), per panel (its evaluation target): mean "
                  f"over seeds with its {LEVEL:.0%} bootstrap CI (rliable), and the exact "
                  f"two-sided p of the paired sign-flip permutation test (scipy; with n seeds "
                  f"the smallest p is 2/2^n: 0.0625 at n = 5). 'finding' only where the CI "
                  f"excludes 0 and p < {ALPHA}; everything else is not distinguishable at "
                  f"these seeds. Neither covers other seeds' luck, longer training or other "
                  f"tasks.")


def health_results(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (task, run), group in final_scores(summary).groupby(["task", "run"], sort=True):
        row = {"task": task, "run": run, "seeds": len(group)}
        for column in HEALTH:
            values = group[column] if column in group else pd.Series(dtype=float)
            row[column] = float(values.mean()) if values.notna().any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=["task", "run", "seeds", *HEALTH])


def health_markdown(table: pd.DataFrame) -> str:
    shown = table.rename(columns=HEALTH)
    for column in HEALTH.values():
        shown[column] = [_or_dash(v, ".3f") for v in shown[column]]
    return _markdown(shown, "llr" + "r" * len(HEALTH))


def paired_differences(summary: pd.DataFrame, figures: dict) -> pd.DataFrame:
    """Per figure panel: each run of the paper's model minus each other run (another legend
    label), final success at the panel's target, at the seeds both have."""
    final = final_scores(summary)
    rows = []
    for fig, spec in figures.items():
        for panel in spec["panels"]:
            column = "eval_success" + (f"_{panel['target']}" if panel.get("target") else "")
            runs = [(r["model"], run_id(r["model"], r["hi"], r["lo"])) for r in panel["runs"]]
            of_task = final[final["task"] == panel["task"]]
            for model, label in runs:
                if PRESETS[model].label != CHALLENGER:
                    continue
                for other_model, other in runs:
                    if PRESETS[other_model].label == CHALLENGER:
                        continue
                    a, b = (of_task[of_task["run"] == r].set_index("seed")[column]
                            for r in (label, other))
                    seeds = sorted(set(a.index) & set(b.index))
                    if not seeds:
                        continue
                    differences = (a[seeds] - b[seeds]).to_numpy()
                    diff, p = mean_and_iqm(differences), sign_flip_p(differences)
                    rows.append({"figure": fig, "task": panel["task"],
                                 "target": panel.get("target", ""), "ours": label,
                                 "other": other, "seeds": len(seeds), "mean": diff["mean"],
                                 "low": diff["mean_low"], "high": diff["mean_high"], "p": p,
                                 "finding": is_finding(diff["mean_low"], diff["mean_high"], p)})
    return pd.DataFrame(rows, columns=["figure", "task", "target", "ours", "other", "seeds",
                                       "mean", "low", "high", "p", "finding"])


def paired_markdown(table: pd.DataFrame) -> str:
    shown = pd.DataFrame({
        "figure": table["figure"], "task": table["task"],
        "target": [f"({_target(t)})" if t else "(headline)" for t in table["target"]],
        "ours": table["ours"], "minus": table["other"], "seeds": table["seeds"],
        "success difference [95% CI]": [f"{r.mean:+.2f} [{r.low:+.2f}, {r.high:+.2f}]"
                                        for r in table.itertuples()],
        "exact p": [f"{p:.3f}" for p in table["p"]],
        "finding": ["finding" if f else "-" for f in table["finding"]]})
    return _markdown(shown, "lllllrlrl")


def target_results(summary: pd.DataFrame) -> pd.DataFrame:
    """For tasks evaluated at several targets: per (task, run) the final success at each."""
    targets = [c.removeprefix("eval_success_") for c in summary.columns
               if c.startswith("eval_success_")]
    rows = []
    for (task, run), group in final_scores(summary).groupby(["task", "run"], sort=True):
        cells = {t: mean_and_iqm(group[f"eval_success_{t}"].to_numpy()) for t in targets
                 if group[f"eval_success_{t}"].notna().all()}
        if cells:
            rows.append({"task": task, "run": run, "step": int(group["step"].iloc[0]),
                         "seeds": len(group), "targets": cells})
    return pd.DataFrame(rows, columns=["task", "run", "step", "seeds", "targets"])


def target_markdown(table: pd.DataFrame) -> str:
    parts = []
    for task, rows in table.groupby("task", sort=True):
        names = list(rows["targets"].iloc[0])
        shown = pd.DataFrame({"run": rows["run"], "steps": [f"{s:,}" for s in rows["step"]],
                              "seeds": rows["seeds"],
                              **{f"success at ({_target(n)})": [_ci(t[n], "mean", 2)
                                                                 for t in rows["targets"]]
                                 for n in names}})
        parts.append(f"{task}:\n\n" + _markdown(shown, "lrr" + "l" * len(names)))
    return "\n\n".join(parts)


def improvements(summary: pd.DataFrame, figures: dict) -> pd.DataFrame:
    """Per figure and (ours run, baseline run): P(ours > baseline) over shared tasks."""
    final = final_scores(summary)
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


def _or_dash(value: float, spec: str) -> str:
    return "-" if np.isnan(value) else format(value, spec)


def _target(name: str) -> str:
    """A target's column suffix as coordinates: '8_0' -> '8, 0', 'm4_8' -> '-4, 8'."""
    return name.replace("m", "-").replace("_", ", ")


def _markdown(shown: pd.DataFrame, align: str) -> str:
    """A table of display strings; align: one of l, c, r per column."""
    names = {"l": "left", "c": "center", "r": "right"}
    return shown.to_markdown(index=False, disable_numparse=True,
                             colalign=[names[a] for a in align])


def _tex(text: str) -> str:
    """hflow's own captions and headers for LaTeX (they hold no other special characters)."""
    return text.replace("_", r"\_").replace("%", r"\%").replace(">", "$>$")


def _latex(shown: pd.DataFrame, caption: str, align: str) -> str:
    """A table of display strings as a LaTeX table (booktabs rules), cells escaped."""
    return (shown.style.hide(axis="index").format(escape="latex")
            .format_index(_tex, axis=1)
            .to_latex(caption=_tex(caption), column_format=align, hrules=True,
                      position="t", position_float="centering"))


def _results_shown(table: pd.DataFrame, markdown: bool) -> pd.DataFrame:
    return pd.DataFrame({
        "task": table["task"], "run": table["run"],
        **({"preset": [f"`{m}`" for m in table["model"]]} if markdown else {}),
        "steps": [f"{s:,}" if markdown else str(s) for s in table["step"]],
        "seeds": table["seeds"].astype(str),
        "success: mean": [_ci(s, "mean", 2) for s in table["success"]],
        "success: IQM": [_ci(s, "iqm", 2) for s in table["success"]],
        "average reward: mean": [_ci(s, "mean", 1) for s in table["reward"]],
        "average reward: IQM": [_ci(s, "iqm", 1) for s in table["reward"]]},
        columns=["task", "run", *(["preset"] if markdown else []), "steps", "seeds",
                 "success: mean", "success: IQM", "average reward: mean",
                 "average reward: IQM"])


def results_markdown(table: pd.DataFrame) -> str:
    return _markdown(_results_shown(table, markdown=True), "lllrrllll")


def _improvements_shown(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "figure": table["figure"], "ours": table["ours"], "baseline": table["baseline"],
        "tasks": table["tasks"].astype(str),
        "P(ours > baseline) [95% CI]": [f"{r.p:.2f} [{r.low:.2f}, {r.high:.2f}]"
                                        for r in table.itertuples()]},
        columns=["figure", "ours", "baseline", "tasks", "P(ours > baseline) [95% CI]"])


def improvements_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "(no figure has both the paper's model and a baseline)"
    return _markdown(_improvements_shown(table), "lllrl")


def table2_latex(table: pd.DataFrame, improvement: pd.DataFrame) -> str:
    """Table II's flags, the results and the improvements; needs \\usepackage{booktabs}."""
    flags = pd.DataFrame(table2_rows(), columns=["Model", "Off-policy correction", "FDGM"])
    return "\n".join([
        _latex(flags, "Model comparison", "lcc"),
        _latex(_results_shown(table, markdown=False), RESULTS_CAPTION, "llrrllll"),
        _latex(_improvements_shown(improvement), IMPROVEMENT_CAPTION, "lllrl")])


def write_table2(summary: pd.DataFrame, figures: dict, md_path: str | Path,
                 tex_path: str | Path, html_path: str | Path | None = None) -> None:
    table = results(summary)
    per_target = target_results(summary)
    improvement = improvements(summary, figures)
    paired = paired_differences(summary, figures)
    md = ("# Table II\n\nModel comparison (from hflow's model registry):\n\n"
          + table2_markdown() + "\n\n## Results\n\n" + RESULTS_CAPTION + "\n\n"
          + results_markdown(table) + "\n\n"
          + ("## Success at each evaluation target\n\n" + TARGETS_CAPTION + "\n\n"
             + target_markdown(per_target) + "\n\n" if not per_target.empty else "")
          + "## Relabel accounting\n\n" + HEALTH_CAPTION + "\n\n"
          + health_markdown(health_results(summary)) + "\n\n"
          + ("## Paired differences\n\n" + PAIRED_CAPTION + "\n\n" + paired_markdown(paired)
             + "\n\n" if not paired.empty else "")
          + "## Probability of improvement\n\n"
          + IMPROVEMENT_CAPTION + "\n\n" + improvements_markdown(improvement) + "\n")
    write_text(md_path, md)
    write_text(tex_path, table2_latex(table, improvement))
    if html_path is not None:
        import markdown_it

        write_text(html_path, "<html><body>\n" + markdown_it.MarkdownIt().enable("table")
                   .render(md) + "</body></html>\n")
