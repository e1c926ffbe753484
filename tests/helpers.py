"""Shared settings for CI-sized training runs: tiny networks, short episodes, few evals."""

TINY = [
    "hi.actor=[16,16]", "hi.critic=[16,16]", "lo.actor=[16,16]", "lo.critic=[16,16]",
    "flow.hidden=[16,16]", "flow.z_state_dim=4", "flow.coupling_layers=2",
    "task.episode_steps=100", "train.eval_every=200", "train.eval_episodes=2",
    "train.warmup=100", "td3.batch_size=32", "hi.buffer_size=2000", "lo.buffer_size=5000",
    "lo.explore_sigma=0.1", "train.device=cpu",
]


def tiny(model: str = "hiro", extra: list[str] | None = None) -> list[str]:
    """--set assignments for a tiny run; flow keys only for flow models."""
    from hflow.agents.registry import get_preset

    flow = get_preset(model).fdgm
    return [s for s in TINY if flow or not s.startswith("flow.")] + list(extra or [])


def train_cmd(out, steps=600, seeds="0,1", extra=(), model="hiro", task="PointMazeSingle"):
    """The `hflow train` command line of a tiny run (evaluations every 200 steps)."""
    import sys

    sets = tiny(model, ["train.eval_every=200", *extra])
    return [sys.executable, "-m", "hflow.cli", "train", "--model", model, "--task", task,
            "--seeds", seeds, "--steps", str(steps), "--out", str(out), "--no-progress",
            *[a for s in sets for a in ("--set", s)]]
