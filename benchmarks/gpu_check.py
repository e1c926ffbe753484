"""The GPU check: one command that measures what hflow needs to know about a GPU machine.

    python benchmarks/gpu_check.py [--out gpu_check.md]        # about 5-8 minutes on an H200
    python benchmarks/gpu_check.py --quick --device cpu         # the script itself, on a CPU
    python benchmarks/gpu_check.py --parts concurrent,env       # some parts (a second call)

Parts, each timed, each a section of one Markdown summary (written to --out and printed):
1. `pytest -m gpu tests/test_gpu.py` (on a CPU they skip; on a GPU a skip fails the check):
   captured vs eager training, CUDA vs CPU updates, host syncs per step;
2. training throughput (benchmarks/train_throughput.py's worker: AntPushSingle, paper-size
   nets, both levels updating, the correction running) for hiro and ours at K = 1, 5, 16, 64;
3. four K = 5 hiro jobs at once on the one GPU, the cores divided between them (the grid's
   jobs have K = 5; hflow/grid.py's GPU rate and the workstation profile's 4 slots rest on
   this), next to one such job alone;
4. hflow's batched env step next to a bare `mujoco.rollout` at K = 1, 16, 64
   (benchmarks/env_throughput.py);
5. hflow's Adam against `torch.optim.Adam(fused=True)` and `(fused=True, capturable=True)`,
   op by op and replayed as a CUDA graph (benchmarks/adam_overhead.py): whether CUDA could
   use torch's optimizer instead.
A part that fails is reported with its error and the check goes on; the exit code is 1 if
any part failed. The summary is rewritten after every part, so a check stopped by a time
limit keeps the parts it finished; `--parts` runs the rest in another call.

It runs from a checkout without `pip install`: every part imports this checkout's hflow (put
first on PYTHONPATH), and the gpu tests are collected from tests/test_gpu.py alone, so a GPU
machine needs torch and hflow's env and config packages, not the analysis and workflow ones
(docs/performance.md lists them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def _worker_cmd(model: str, members: int, args, env_threads: int) -> list[str]:
    cmd = [sys.executable, str(BENCH / "train_throughput.py"), "--worker", "--models", model,
           "--members", str(members), "--steps", str(args.steps), "--device", args.device,
           "--task", args.task, "--env-threads", str(env_threads)]
    return cmd + (["--tiny"] if args.quick else [])


def _result(done: subprocess.CompletedProcess) -> dict:
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip()
                           else f"exit {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def part_tests(args) -> str:
    # test_gpu.py alone: collecting the whole suite would import the analysis and workflow
    # packages (rliable, pypdf), which a GPU machine may not have.
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-m", "gpu", "-p",
                           "no:cacheprovider", str(ROOT / "tests" / "test_gpu.py")],
                          capture_output=True, text=True, cwd=ROOT)
    lines = done.stdout.strip().splitlines()
    said = [ln for ln in lines if ln.startswith(("FAILED", "ERROR", "SKIPPED"))]
    body = "\n".join([f"`{lines[-1] if lines else done.stderr[-300:]}`", *said])
    skipped = any(ln.startswith("SKIPPED") for ln in said)
    if done.returncode or (skipped and args.device != "cpu"):  # on a GPU none may skip
        raise RuntimeError(f"pytest exit {done.returncode}:\n{body}")
    return body


def part_throughput(args) -> str:
    rows = ["| model | K | env steps/s per member | group | env ms | act ms | low update ms "
            "| high update ms | other ms |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for model in args.models:
        for members in args.members:
            done = subprocess.run(_worker_cmd(model, members, args, args.env_threads),
                                  capture_output=True, text=True, cwd=ROOT)
            r = _result(done)
            ms = r["ms_per_step"]
            rows.append(f"| {model} | {members} | {r['sps']:,.1f} | {members * r['sps']:,.0f} "
                        f"| {ms['env']:.2f} | {ms['act']:.2f} | {ms['low_update']:.2f} | "
                        f"{ms['high_update']:.2f} | {ms['other']:.2f} |")
            print(rows[-1], flush=True)  # long part: each row as it comes
    return "\n".join(rows)


def part_concurrent(args) -> str:
    jobs, members = args.jobs, args.job_members
    threads = max(1, (os.cpu_count() or 1) // jobs)
    alone = _result(subprocess.run(_worker_cmd("hiro", members, args, threads),
                                   capture_output=True, text=True, cwd=ROOT))
    procs = [subprocess.Popen(_worker_cmd("hiro", members, args, threads),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT) for _ in range(jobs)]
    results = []
    for p in procs:
        out, err = p.communicate()
        results.append(_result(subprocess.CompletedProcess(p.args, p.returncode, out, err)))
    together = sum(members * r["sps"] for r in results)
    one = members * alone["sps"]
    return (f"hiro, K = {members} per job, {threads} env threads per job: one job alone "
            f"{one:,.0f} member env steps/s; {jobs} jobs at once {together:,.0f} together "
            f"({together / one:.2f}x)")


def part_env(args) -> str:
    done = subprocess.run([sys.executable, str(BENCH / "env_throughput.py"), "--task",
                           args.task, "--members", *map(str, args.env_members), "--threads",
                           str(args.env_threads), "--batch-steps", str(args.env_steps),
                           "--repeats", "2"], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return "```\n" + done.stdout.strip() + "\n```"


def part_adam(args) -> str:
    done = subprocess.run([sys.executable, str(BENCH / "adam_overhead.py"), "--device",
                           args.device, "--members", "5", "--steps", str(args.adam_steps)],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return "```\n" + done.stdout.strip() + "\n```"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.md"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--task", default="AntPushSingle")
    parser.add_argument("--quick", action="store_true",
                        help="tiny nets, few steps, small K: check the script, not the GPU")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated, from {', '.join(PARTS)} (default: all)")
    parser.add_argument("--env-threads", type=int, default=os.cpu_count() or 1,
                        help="threads stepping a job's envs (default: every core; on the "
                             "16-core H200 node 16 beat 8 at K = 64)")
    args = parser.parse_args()
    chosen = args.parts.split(",")
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        parser.error(f"--parts {args.parts!r}: unknown {', '.join(unknown)}; allowed: "
                     f"{', '.join(PARTS)}")
    # Every part's subprocess imports this checkout's hflow, before any installed one.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [
        os.environ.get("PYTHONPATH")])])
    cores = os.cpu_count() or 1
    if args.quick:
        args.models, args.members, args.steps = ["hiro", "ours"], [1, 2], 10
        args.jobs, args.job_members, args.env_members, args.env_steps = 2, 2, [1, 2], 10
        args.adam_steps = 50
    else:
        args.models, args.members, args.steps = ["hiro", "ours"], [1, 5, 16, 64], 150
        args.jobs, args.job_members, args.env_members, args.env_steps = 4, 5, [1, 16, 64], 200
        args.adam_steps = 2000

    import torch

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    titles = {"tests": "gpu tests", "throughput": "training throughput",
              "concurrent": f"{args.jobs} jobs sharing the device",
              "env": "env step vs mujoco.rollout", "adam": "Adam: hflow's and torch.optim's"}
    parts = [(titles[name], PARTS[name]) for name in PARTS if name in chosen]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=ROOT).stdout.strip() or "no git"
    except OSError:  # no git on the machine
        commit = "no git"
    sections = [f"# hflow GPU check\n\n{device}, {cores} cores, torch {torch.__version__}, "
                f"task {args.task}{', quick (tiny nets)' if args.quick else ''}; hflow from "
                f"{ROOT} ({commit}), {args.env_threads} env threads"]
    failed = False
    for title, part in parts:
        start = time.perf_counter()
        try:
            body = part(args)
        except Exception as err:  # report and go on: one summary with every part
            body, failed = f"FAILED: {type(err).__name__}: {err}", True
        sections.append(f"## {title} ({time.perf_counter() - start:.0f} s)\n\n{body}")
        print(sections[-1] + "\n", flush=True)
        tmp = args.out.with_name(args.out.name + ".tmp")  # whole summaries only
        tmp.write_text("\n\n".join(sections) + "\n")
        os.replace(tmp, args.out)
    print(f"summary: {args.out}")
    return 1 if failed else 0


PARTS = {"tests": part_tests, "throughput": part_throughput, "concurrent": part_concurrent,
         "env": part_env, "adam": part_adam}

if __name__ == "__main__":
    sys.exit(main())
