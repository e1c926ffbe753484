"""Learning-curve figures laid out as the paper's Fig. 3-5.

A figure spec (from the grid config) lists panels; each panel is a task and the runs drawn in
it: `{model, hi, lo, color}`, and optionally `target` (a metric suffix such as '8_0': that eval
target's columns instead of the headline's, for tasks evaluated at several). Each line is the
mean over seeds with its 95% stratified-bootstrap band (rliable, the estimator of the results
table); legend labels are the paper's `{model}_{hi}_{lo}` (the preset name where two runs of a
panel would share one). Page 1 of the PDF is the eval average
reward (the paper's y axis), page 2 the success rate, pages 3 and 4 the low level's own task
from the training steps: the share of the distance to its subgoal left at the end of a c-step
segment (1 means no closer), and the distance a segment covers toward its subgoal's x, y (on
the Ant the first moves while the legs' own motion still holds the share at 1); PNG copies
of the pages are written beside it.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.colors import is_color_like  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from hflow import HflowError  # noqa: E402
from hflow.analysis.aggregate import run_id, run_label  # noqa: E402
from hflow.analysis.stats import curves  # noqa: E402
from hflow.io import atomic_path  # noqa: E402

PAGES = (("eval_reward", "average reward"), ("eval_success", "success rate"),
         ("low_subgoal_distance_left", "low level: subgoal distance left"),
         ("low_subgoal_xy_progress", "low level: x, y progress per segment"))
PNG_SUFFIXES = ("", "_success", "_low", "_low_xy")  # one PNG per page, beside the PDF


def _steps(x, _pos) -> str:
    return f"{x / 1e6:g}M" if abs(x) >= 1e6 else f"{x / 1e3:g}k" if abs(x) >= 1e3 else f"{x:g}"


def check_spec(spec: dict) -> None:
    """The figure spec's shape, with errors that say what is missing where."""
    panels = spec.get("panels") if isinstance(spec, dict) else None
    if not isinstance(panels, list) or not panels:
        raise HflowError("a figure spec needs 'panels': a non-empty list of {task, runs}")
    for i, panel in enumerate(panels):
        if not isinstance(panel, dict) or "task" not in panel or not panel.get("runs"):
            raise HflowError(f"figure spec panel {i} needs 'task' and a non-empty 'runs'")
        for j, run in enumerate(panel["runs"]):
            missing = [k for k in ("model", "hi", "lo") if k not in run]
            if missing:
                raise HflowError(f"figure spec panel {i} run {j} lacks {', '.join(missing)}")
            if "color" in run and not is_color_like(run["color"]):
                raise HflowError(f"figure spec panel {i} run {j}: color {run['color']!r} is "
                                 f"not a matplotlib colour (a name such as 'green', or "
                                 f"'#1f77b4')")


def check_runs(summary: pd.DataFrame, spec: dict) -> None:
    for panel in spec["panels"]:
        column = _column("eval_success", panel)
        if column not in summary.columns:
            targets = sorted(c.removeprefix("eval_success_") for c in summary.columns
                             if c.startswith("eval_success_"))
            raise HflowError(f"figure panel {panel['task']}: target={panel.get('target')!r} "
                             f"has no column {column}; targets in the summary: "
                             f"{', '.join(targets) or 'none'}")
    present = set(zip(summary["task"], summary["run"], summary["model"]))
    missing = [f"{p['task']} {r['model']} hi={r['hi']} lo={r['lo']}" for p in spec["panels"]
               for r in p["runs"]
               if (p["task"], run_id(r["model"], r["hi"], r["lo"]), r["model"]) not in present]
    if missing:
        raise HflowError("the summary has no results for: " + "; ".join(missing))


def _column(value: str, panel: dict) -> str:
    """The panel's column of `value`: an evaluation at the panel's target, if it names one."""
    return f"{value}_{panel['target']}" if panel.get("target") and value.startswith(
        "eval_") else value


def _page(summary: pd.DataFrame, spec: dict, value: str, ylabel: str):
    panels = spec["panels"]
    cols = min(len(panels), 2 if len(panels) == 4 else 3)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
    # a column that no run has (runs trained before it existed) draws an empty panel
    stats = {column: curves(summary, column)
             for column in {_column(value, panel) for panel in panels}
             if column in summary.columns}
    palette = sns.color_palette("tab10")
    for i, (ax, panel) in enumerate(zip(axes.flat, panels)):
        labels = [run_label(r["model"], r["hi"], r["lo"]) for r in panel["runs"]]
        for j, run in enumerate(panel["runs"]):
            ident = run_id(run["model"], run["hi"], run["lo"])
            # the paper's label, unless two runs of the panel share it (ours, ours_alg2)
            label = labels[j] if labels.count(labels[j]) == 1 else ident
            table = stats.get(_column(value, panel))
            line = None if table is None else table[(table["task"] == panel["task"])
                                                    & (table["run"] == ident)]
            if line is None or line.empty:  # the run has no value of this column at any step
                continue
            color = run.get("color", palette[j % len(palette)])
            ax.plot(line["step"], line["mean"], color=color, label=label, lw=1.6)
            ax.fill_between(line["step"], line["ci_low"], line["ci_high"], color=color,
                            alpha=0.2, lw=0)
        letter = f"({chr(ord('a') + i)}) " if len(panels) > 1 else ""
        ax.set_title(letter + panel.get("title", panel["task"]), fontsize=10)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_formatter(FuncFormatter(_steps))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8, loc="best")
        else:  # runs trained before the column existed
            ax.text(0.5, 0.5, f"no {value} in these runs", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8, color="gray")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    n = int(summary["seed"].nunique())
    fig.suptitle(f"{spec.get('title', '')}\nmean over seeds with 95% stratified-bootstrap CI "
                 f"(rliable; {n} seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_figure(summary: pd.DataFrame, spec: dict, out_pdf: str | Path) -> list[Path]:
    """Writes OUT.pdf (one page per PAGES) and a PNG of each page; returns the paths."""
    check_spec(spec)
    check_runs(summary, spec)
    out_pdf = Path(out_pdf)
    tasks = {p["task"] for p in spec["panels"]}
    summary = summary[summary["task"].isin(tasks)]
    written = [out_pdf]
    sns.set_theme(style="whitegrid", context="paper")
    figs = [_page(summary, spec, value, ylabel) for value, ylabel in PAGES]
    with atomic_path(out_pdf) as tmp, PdfPages(tmp) as pdf:
        for fig in figs:
            pdf.savefig(fig)
    for fig, suffix in zip(figs, PNG_SUFFIXES, strict=True):
        png = out_pdf.with_name(f"{out_pdf.stem}{suffix}.png")
        with atomic_path(png) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        written.append(png)
        plt.close(fig)
    return written
