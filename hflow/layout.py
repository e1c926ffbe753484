"""Where a run's files live, each name stated once: hflow.run_files writes them; hflow.grid,
hflow.rollout, the analysis and the workflow's rules find them here. Torch-free.

    {root}/{task}/{model}_{hi}_{lo}/seed{N}/metrics.csv   one row per evaluation
                                          /config.json   the run's record (resolved config)
                                          /policy.pt     the final policy
    {state root}/.../seeds-{N-M-...}/                    a seed group's resume checkpoints
"""

from __future__ import annotations

RUN_DIR = "{task}/{model}_{hi}_{lo}"
METRICS = "metrics.csv"
RECORD = "config.json"
POLICY = "policy.pt"


def seed_dir(run_dir, seed) -> str:
    """A seed's directory inside its run's (`seed` may be a wildcard such as '{seed}')."""
    return f"{run_dir}/seed{seed}"


def seed_file(run_dir, seed, name: str) -> str:
    return f"{seed_dir(run_dir, seed)}/{name}"


def group_name(seeds) -> str:
    """A seed group's name: its checkpoints' directory and its job's log."""
    return "seeds-" + "-".join(map(str, seeds))
