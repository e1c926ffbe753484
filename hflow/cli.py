"""The `hflow` command. Each subcommand is a thin shell over a library function."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hflow import HflowError, __version__


def _cmd_envs(args) -> int:
    from hflow.envs import TASKS, goal_space

    if args.action == "list":
        print(f"{'task':<18} {'robot':<6} {'obs':>4} {'act':>4} {'hi':>3} {'lo':>3}  "
              f"eval targets (headline *)")
        notes = []
        for name, spec in TASKS.items():
            g = goal_space(spec)
            targets = " ".join("(" + ", ".join(f"{v:g}" for v in t) + ")"
                               + ("*" if len(g.eval_targets) > 1 and t == g.eval_target else "")
                               for t in g.eval_targets)
            mark = "" if spec.in_hiro else "  [not a HIRO task]"
            print(f"{name:<18} {spec.robot.name:<6} {spec.obs_dim:>4} {spec.robot.nu:>4} "
                  f"{g.hi:>3} {g.lo:>3}  {targets}{mark}")
            if not spec.in_hiro:
                notes.append(name)
        if notes:
            print(f"\n{', '.join(notes)}: not in HIRO's code, whose Maze always samples its "
                  f"training targets (the multi variant); hflow adds them as training at the "
                  f"headline target.")
        return 0
    if args.action == "check":
        from hflow.envs.checks import CHECKS

        failed = 0
        for check in CHECKS:
            result = check()
            failed += not result.passed
            print(f"{'PASS' if result.passed else 'FAIL'}  {result.name}: {result.detail}",
                  flush=True)
        print(f"{len(CHECKS) - failed}/{len(CHECKS)} checks passed")
        return 1 if failed else 0
    if args.action == "render":
        from hflow.envs.render import render_task

        if not args.task or not args.output:
            raise HflowError("usage: hflow envs render TASK -o FILE.png")
        print(render_task(args.task, args.output))
        return 0
    raise AssertionError(args.action)


def _cmd_train(args) -> int:
    from hflow.config import describe
    from hflow.resolve import resolve
    from hflow.run import train

    if args.help_config:
        print(describe())
        return 0
    seeds = None
    if args.seeds is not None:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise HflowError(f"--seeds expects integers separated by commas, got "
                             f"{args.seeds!r}") from None
    flags = {"task.name": args.task, "task.hi": args.hi, "task.lo": args.lo,
             "train.seeds": seeds, "train.steps": args.steps, "train.device": args.device}
    cfg = resolve(args.model, args.config, flags, args.set)
    if args.print_config:
        print(yaml_dump(cfg.to_dict()))
        return 0
    if not args.out:
        raise HflowError("--out is required: the directory that gets one seed<N>/ per seed")
    train(cfg, args.out, args.state_dir, progress=not args.no_progress)
    return 0


def _cmd_plan(args) -> int:

    from hflow.grid import plan_text, read_grid_file, target_figures, validate_grid

    path = Path(args.configfile)
    config = read_grid_file(path)
    validate_grid(config, f"config file {path}")  # exactly what the workflow checks
    figures = target_figures(config, args.targets)  # the targets as Snakemake names them
    print(f"{path}: {len(config['seeds'])} seeds, {config['steps']:,} env steps per seed")
    print(plan_text(config, figures))
    return 0


def _cmd_rollout(args) -> int:
    from hflow.rollout import draw_rollouts, stats_text

    if args.episodes < 1:
        raise HflowError(f"--episodes {args.episodes}: give at least 1 episode per target")
    kinds = ("png", "pdf", "svg", "jpg")
    if Path(args.output).suffix.lstrip(".").lower() not in kinds:
        raise HflowError(f"-o {args.output}: the picture's extension must be one of "
                         f"{', '.join('.' + k for k in kinds)}")
    path, stats = draw_rollouts(args.seed_dir, args.output, args.episodes)
    print(stats_text(stats))
    print(path)
    return 0


def _cmd_models(args) -> int:
    from hflow.agents.registry import presets_markdown, table2_markdown

    print("TABLE II: Model comparison (from the presets' flags)\n")
    print(table2_markdown())
    print("\nPresets (`hflow train --model NAME`)\n")
    print(presets_markdown())
    return 0


def _cmd_aggregate(args) -> int:
    from hflow.analysis.aggregate import aggregate, write_summary

    frame = aggregate(args.metrics)
    write_summary(frame, args.output)
    print(f"{args.output}: {len(frame)} rows, {frame.groupby(['task', 'run']).ngroups} runs, "
          f"{len(args.metrics)} seeds' metrics")
    return 0


def _read_summary(path):
    import pandas as pd

    if not Path(path).exists():
        raise HflowError(f"summary {path!r} does not exist; run `hflow aggregate` first")
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow's errors have no common base worth naming
        raise HflowError(f"summary {path!r} cannot be read ({type(err).__name__}); rebuild it "
                         f"with `hflow aggregate`") from None


def _json_arg(flag: str, text: str, kind: type):
    """A JSON argument (the workflow passes options, figure specs and the figures this way):
    one line naming the flag when it is not JSON or not a `kind`."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise HflowError(f"{flag} is not valid JSON: {err}") from None
    if not isinstance(value, kind):
        raise HflowError(f"{flag} must be a JSON {'object' if kind is dict else kind.__name__}, "
                         f"got {text[:80]!r}")
    return value


def _cmd_figures(args) -> int:
    from hflow.analysis.figures import check_spec, plot_figure

    if Path(args.output).suffix.lower() != ".pdf":
        raise HflowError(f"-o {args.output}: a figure is written as a PDF (its pages: average "
                         f"reward, success rate) with a PNG of each beside it; give a .pdf path")
    spec = _json_arg("--spec", args.spec, dict)
    check_spec(spec)  # before the summary is read: a bad spec is the first thing said
    for path in plot_figure(_read_summary(args.summary), spec, args.output):
        print(path)
    return 0


def _cmd_tables(args) -> int:
    from hflow.analysis.tables import write_table2

    figures = _json_arg("--figures", args.figures, dict)
    write_table2(_read_summary(args.summary), figures, args.md, args.tex, args.html)
    for path in (args.md, args.tex, args.html):
        if path:
            print(path)
    return 0


def yaml_dump(obj) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False).rstrip()


class _StoreOnce(argparse._StoreAction):
    """An option that takes one value: given twice, it is an error (not the last one winning
    silently), as a key given twice is everywhere else in hflow."""

    def __call__(self, parser, namespace, values, option_string=None):
        seen = namespace.__dict__.setdefault("_given", set())
        if self.dest in seen:
            parser.error(f"{option_string} is given twice; give it once")
        seen.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)  # the default action, `store`, once


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hflow", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    envs = sub.add_parser("envs", help="list the tasks, run the physics checks, draw a layout")
    envs.add_argument("action", nargs="?", default="list", choices=("list", "check", "render"))
    envs.add_argument("task", nargs="?", help="for render: a task such as AntPushSingle")
    envs.add_argument("-o", "--output", help="for render: the picture to write (.png, .pdf)")
    envs.set_defaults(func=_cmd_envs)

    tr = sub.add_parser(
        "train", help="train K seeds of one configuration in lockstep",
        description="Train one model on one task for several seeds at once. Rerunning the same "
                    "command resumes from the newest checkpoint in the state directory.")
    tr.add_argument("--model", help="a preset, e.g. hiro or ours (all of them: `hflow models`)")
    tr.add_argument("--task", help="e.g. AntPushSingle (see `hflow envs`)")
    tr.add_argument("--hi", type=int, help="target dims (default: the task's own)")
    tr.add_argument("--lo", type=int, help="subgoal dims (default: the robot's full tuple)")
    tr.add_argument("--seeds", help="comma-separated seeds trained together, e.g. 0,1,2")
    tr.add_argument("--steps", type=int, help="env steps per seed")
    tr.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    tr.add_argument("--out", help="output directory; one seed<N>/ subdirectory per seed")
    tr.add_argument("--state-dir", help="resume checkpoints (default: OUT/state-seeds-...)")
    tr.add_argument("--config", metavar="FILE",
                    help="a YAML file of config keys, or a run's seed<N>/config.json to train "
                         "that run's configuration again (the flags and --set override it)")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override one config key, e.g. --set td3.batch_size=256 (repeatable)")
    tr.add_argument("--no-progress", action="store_true", help="no progress display")
    tr.add_argument("--print-config", action="store_true",
                    help="print the resolved config and exit")
    tr.add_argument("--help-config", action="store_true",
                    help="list every config key with its default and exit")
    tr.set_defaults(func=_cmd_train)

    plan = sub.add_parser("plan", help="what a workflow target costs before it starts")
    plan.add_argument("targets", nargs="*",
                      help="figures (fig3 or figures/fig3.pdf), table2 or all (default: each "
                           "figure and all)")
    plan.add_argument("--configfile", default="config/config.yaml")
    plan.set_defaults(func=_cmd_plan)

    roll = sub.add_parser("rollout", help="draw evaluation episodes of a trained policy")
    roll.add_argument("seed_dir", help="a finished run's seed<N>/ directory (with policy.pt)")
    roll.add_argument("-o", "--output", required=True, help="e.g. rollout.png")
    roll.add_argument("--episodes", type=int, default=3, help="episodes per eval target")
    roll.set_defaults(func=_cmd_rollout)

    models = sub.add_parser("models", help="Table II and the model presets")
    models.set_defaults(func=_cmd_models)

    agg = sub.add_parser("aggregate", help="all runs' metrics into one parquet table")
    agg.add_argument("metrics", nargs="+", help="seed<N>/metrics.csv files")
    agg.add_argument("-o", "--output", required=True, help="e.g. results/summary.parquet")
    agg.set_defaults(func=_cmd_aggregate)

    figs = sub.add_parser("figures", help="one learning-curve figure (PDF + PNG)")
    figs.add_argument("--summary", required=True)
    figs.add_argument("--spec", required=True,
                      help="JSON: {title, panels: [{task, runs: [{model, hi, lo, color}]}]}")
    figs.add_argument("-o", "--output", required=True, help="e.g. figures/fig3.pdf")
    figs.set_defaults(func=_cmd_figures)

    tables = sub.add_parser("tables", help="Table II (O/X) and the results table")
    tables.add_argument("--summary", required=True)
    tables.add_argument("--md", required=True)
    tables.add_argument("--tex", required=True)
    tables.add_argument("--html", help="the same tables as HTML (for the Snakemake report)")
    tables.add_argument("--figures", default="{}",
                        help="JSON: the config's figures, for the probability of improvement")
    tables.set_defaults(func=_cmd_tables)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except HflowError as err:
        print(f"hflow: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
