"""The `hflow` command. Each subcommand is a thin shell over a library function."""

from __future__ import annotations

import argparse
import sys

from hflow import HflowError, __version__


def _cmd_envs(args) -> int:
    from hflow.envs import TASKS, goal_space

    if args.action == "list":
        print(f"{'task':<18} {'robot':<6} {'obs':>4} {'act':>4} {'hi':>3} {'lo':>3}  eval target")
        for name, spec in TASKS.items():
            g = goal_space(spec)
            target = ", ".join(f"{v:g}" for v in g.eval_target)
            print(f"{name:<18} {spec.robot.name:<6} {spec.obs_dim:>4} "
                  f"{spec.robot.nu:>4} "
                  f"{g.hi:>3} {g.lo:>3}  ({target})")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hflow", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    envs = sub.add_parser("envs", help="list the tasks, run the physics checks, draw a layout")
    envs.add_argument("action", nargs="?", default="list", choices=("list", "check", "render"))
    envs.add_argument("task", nargs="?", help="for render: a task such as AntPushSingle")
    envs.add_argument("-o", "--output", help="for render: the picture to write (.png, .pdf)")
    envs.set_defaults(func=_cmd_envs)
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
