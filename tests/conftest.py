"""Shared settings for CI-sized training runs (tiny networks, short episodes, few evals), as
the fixtures `tiny` and `train_cmd`."""

import re
import sys

import pytest

TINY = [
    "high.actor=[16,16]", "high.critic=[16,16]", "low.actor=[16,16]", "low.critic=[16,16]",
    "flow.hidden=[16,16]", "flow.z_state_dim=4", "flow.coupling_layers=2",
    "task.episode_steps=100", "train.eval_every=200", "train.eval_episodes=2",
    "train.warmup=100", "td3.batch_size=32", "high.buffer_size=2000", "low.buffer_size=5000",
    "low.explore_sigma=0.1", "train.device=cpu",
]


def pytest_collection_modifyitems(config, items):
    """The SLURM tests start daemons: they run when asked (`python -m pytest -m slurm`), never
    as a side effect of a plain `python -m pytest`."""
    if "slurm" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="starts a SLURM cluster: run it with python -m pytest -m slurm")
    for item in items:
        if "slurm" in item.keywords:
            item.add_marker(skip)


def squeeze(markdown: str) -> str:
    """A Markdown table with its cell padding collapsed: `| a   |  b |` -> `| a | b |`."""
    return re.sub(r" {2,}", " ", markdown)


def tiny_sets(model: str = "hiro", extra: list[str] | None = None) -> list[str]:
    """--set assignments for a tiny run; flow keys only for flow models."""
    from hflow.agents.registry import get_preset

    flow = get_preset(model).fdgm
    extra = list(extra or [])
    given = {e.split("=", 1)[0] for e in extra}  # a key is set once: extra replaces TINY's
    return [s for s in TINY if (flow or not s.startswith("flow."))
            and s.split("=", 1)[0] not in given] + extra


def train_command(out, steps=600, seeds="0,1", extra=(), model="hiro",
                  task="PointMazeSingle") -> list[str]:
    """The `hflow train` command line of a tiny run (evaluations every 200 steps)."""
    sets = tiny_sets(model, ["train.eval_every=200", *extra])
    return [sys.executable, "-m", "hflow.cli", "train", "--model", model, "--task", task,
            "--seeds", seeds, "--steps", str(steps), "--out", str(out), "--no-progress",
            *[a for s in sets for a in ("--set", s)]]


@pytest.fixture(scope="session")
def tiny():
    """tiny(model, extra): the --set assignments of a tiny run of `model`."""
    return tiny_sets


@pytest.fixture(scope="session")
def train_cmd():
    """train_cmd(out, steps, seeds, extra, model, task): a tiny run's command line."""
    return train_command


# The gpu tests' run length: warm-up is 100 steps, then the high level needs a batch (32) of
# c = 10 step segments. tests/test_device.py checks on the CPU that it suffices.
GPU_TEST_STEPS = 500
# Every step the loop runs through hflow.graphs (HIRO's delay: the actor's and the momentum step).
STEP_KINDS = {"act_low", "act_high", "low_critic_step", "low_actor_step", "low_momentum_step",
              "high_critic_step", "high_actor_step", "high_momentum_step"}


def assert_both_levels_update(trainer):
    """The premise of comparing two runs: both buffers hold a batch, both levels updated."""
    batch = trainer.cfg.td3.batch_size
    assert len(trainer.low_buffer) >= batch and len(trainer.high_buffer) >= batch, (
        len(trainer.low_buffer), len(trainer.high_buffer), batch)
    assert trainer.agent.low.updates > 0 and trainer.agent.high.updates > 0


def advance_until_both_update(trainer, steps: int = GPU_TEST_STEPS):
    """`steps` env steps, then the premise above checked; returns the trainer."""
    for _ in range(steps):
        trainer.advance()
    assert_both_levels_update(trainer)
    return trainer


@pytest.fixture(scope="session")
def make_trainer(tiny):
    """make_trainer(tmp_path, model, device, capture): the tiny 2-seed BallPush run of the
    gpu tests, not started."""
    from emulation import emulate

    from hflow.resolve import resolve
    from hflow.train import Trainer

    def make(tmp_path, model, device, steps=1000, capture="auto"):
        """capture: train.capture, or 'emulate' (the graphs' buffers without a graph)."""
        setting = "eager" if capture == "emulate" else capture
        cfg = resolve(model, options={"train.seeds": [0, 1], "train.steps": steps},
                      sets=tiny(model, ["task.name=BallPushSingle", f"train.device={device}",
                                        f"train.capture={setting}"]))
        trainer = Trainer(cfg)
        return emulate(trainer) if capture == "emulate" else trainer

    return make
