"""Where the flow's exact inverse lands, per goal element, read from a resume checkpoint.

    python benchmarks/relabel_range.py STATE_DIR_OR_CHECKPOINT [--segments 512]

Samples segments from the checkpoint's high-level replay (a fixed stream of its own, so the
training's streams are untouched), runs the run's correction on them with the checkpoint's
networks, and prints per goal element and member: the share of segments whose relabelled
element lies outside the subgoal range before `flow.outside_range` acts, the median
|relabelled element| / bound, and the median |stored element| / bound (the high level's own
goals, for comparison; for a run whose correction is not the flow's inverse, this column
only). metrics.csv's `high_relabel_out_of_range` is the first averaged over the elements;
this says which elements it comes from. No env steps, no training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hflow import HflowError  # noqa: E402
from hflow.checkpoint import list_checkpoints, load  # noqa: E402
from hflow.resolve import from_dict  # noqa: E402
from hflow.seeding import BlockedRNG  # noqa: E402
from hflow.train import Trainer  # noqa: E402


def element_table(raw: torch.Tensor, stored: torch.Tensor, bound: torch.Tensor) -> dict:
    """raw, stored: [K, B, lo] relabelled (before the fallback) and stored goals; bound [lo].
    Returns [K, lo] tensors: share of segments out of range, median |raw| / bound, median
    |stored| / bound."""
    return {"outside": (raw.abs() > bound).float().mean(1),
            "relabel": (raw.abs() / bound).median(dim=1).values,
            "stored": (stored.abs() / bound).median(dim=1).values}


def main() -> None:
    try:
        report()
    except HflowError as err:
        sys.exit(f"relabel_range: {err}")


def report() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("state", type=Path, help="a state directory or one checkpoint file")
    parser.add_argument("--segments", type=int, default=512, help="sampled per member")
    args = parser.parse_args()
    path = args.state if args.state.is_file() else list_checkpoints(args.state)[-1]
    state = load(path)  # checked, and older formats brought up to date
    cfg = from_dict(state["config"])
    trainer = Trainer(cfg)
    trainer.load_state_dict(state)
    agent = trainer.agent
    batch = trainer.high_buffer.sample(args.segments,
                                       BlockedRNG(cfg.train.seeds, "relabel_range"))
    stored = batch["goal"]
    inverse = cfg.hierarchy.correction == "flow"
    # other corrections draw numbers from the training's streams; only the inverse is run here
    raw = agent.correction(agent, batch).raw if inverse else stored
    table = element_table(raw, stored, agent.subgoal_bound)
    keys = ("outside", "relabel", "stored") if inverse else ("stored",)
    heads = {"outside": "outside the range", "relabel": "|relabel| / bound",
             "stored": "|stored| / bound"}
    names = trainer.goals.subgoal_names
    k = len(trainer.seeds)
    print(f"{path}: {cfg.model} {cfg.task.name}, env step {state['step']:,}, "
          f"{args.segments} segments per member; one column per member (seeds "
          f"{', '.join(map(str, trainer.seeds))})"
          + ("" if inverse else f"; correction {cfg.hierarchy.correction!r}: stored goals only"))
    print(f"{'element':>8}  " + "  ".join(f"{heads[key]:>{7 * k - 1}}" for key in keys))
    for i, name in enumerate(names):
        print(f"{name:>8}  " + "  ".join(" ".join(f"{float(v):6.2f}" for v in table[key][:, i])
                                         for key in keys))

if __name__ == "__main__":
    main()
