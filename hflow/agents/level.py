"""One level of the hierarchy as a learner: its TD3, replay, random streams, schedule and
critic step, with `update` as the one way an update happens (the training loop, the tests and
the benchmarks all call it).

An update is two steps of the level's TD3, each a function of its inputs alone so that either
can be replayed as a CUDA graph: the critic step (the high level's relabels the sampled
segments first), then the step the policy delay asks for (the actor's, HIRO's momentum step,
or none). Op by op they are called directly; captured, through a runner (hflow.graphs). The
level draws every random number the steps use, from its own streams, in a fixed order:
replay indices, target-policy noise, the correction's draws.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from hflow.agents.td3 import TD3, draw_target_noise
from hflow.metrics import LEVEL_METRICS
from hflow.replay import ReplayBuffer

Step = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
# How a step runs when it is not called directly: (name, step, inputs) -> outputs, e.g.
# hflow.graphs.StepGraphs replaying it as a CUDA graph
Runner = Callable[[str, Step, dict[str, torch.Tensor]], dict[str, torch.Tensor]]


@contextlib.contextmanager
def flushing_denormals(on: bool) -> Iterator[None]:
    """Float32 denormals read and written as 0 on this thread's CPU ops inside the block when
    `on` (torch's default, off, holds outside it). Why: the Adam moments of a unit whose
    gradient stays 0 decay geometrically into the denormal range, which x86 computes many times
    slower (a 300k-step HIRO Ant run: 18.5% of its moments, 44% in one tensor). What it changes
    lies below the last bit of a parameter of normal size (a flushed moment moves an update by
    less than lr * 1.2e-38 / eps): 300 steps from that run's 300k checkpoint end with the same
    parameters, bit for bit, either way."""
    if not on:
        yield
        return
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


class Level:
    """name: 'low' or 'high' (its metrics are LEVEL_METRICS[name], logged as `<name>_<metric>`);
    td3: its networks, optimizers and critic step (the high level's relabels first:
    TD3.relabel); streams: 'replay' and 'noise', plus 'correction' when `draw` is given
    (draw(rng, B, size) -> the correction's random numbers); noise_dim: the size of the level's
    action; flush_denormal: whether its updates flush float32 denormals to zero
    (`flushing_denormals`). A level without replay or streams learns from the batches it is
    given (`update(batch=...)`)."""

    def __init__(self, name: str, td3: TD3, replay: ReplayBuffer | None = None,
                 streams: dict | None = None, noise_dim: int = 0, batch_size: int = 0,
                 every: int = 1, draw: Callable | None = None, flush_denormal: bool = False):
        self.name, self.td3, self.replay = name, td3, replay
        self.flush_denormal = flush_denormal
        self.streams, self.noise_dim, self.draw = streams or {}, noise_dim, draw
        self.batch_size, self.every = batch_size, every
        assert name in LEVEL_METRICS, name  # its metrics are declared there

    def due(self, step: int) -> bool:
        """Whether env step `step` (counted after the step) updates this level."""
        return step % self.every == 0 and len(self.replay) >= self.batch_size

    def draws(self) -> dict[str, torch.Tensor]:
        """The random numbers a step takes besides its batch: target-policy noise, then the
        correction's draws."""
        B = self.batch_size
        out = {"noise": draw_target_noise(self.streams["noise"], B, self.noise_dim)}
        if self.draw is not None:
            out.update(self.draw(self.streams["correction"], B, self.noise_dim))
        return out

    def update(self, run: Runner | None = None,
               batch: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One update: a batch sampled from the level's replay with its draws (or `batch`,
        given whole, draws included), the TD3's critic step on it, then the step its policy
        delay asks for on the batch's states; each called directly, or through `run`.
        Returns the per-member [K] metrics, named as in LEVEL_METRICS."""
        with flushing_denormals(self.flush_denormal):
            return self._update(run, batch)

    def _update(self, run: Runner | None, batch: dict[str, torch.Tensor] | None
                ) -> dict[str, torch.Tensor]:
        if batch is None:
            batch = {**self.replay.sample(self.batch_size, self.streams["replay"]),
                     **self.draws()}
        td3 = self.td3
        metrics = td3.critic_step(batch) if run is None else \
            run(f"{self.name}_critic_step", td3.critic_step, batch)
        if (delayed := td3.delayed_step()) is not None:  # it reads the states only
            states = {"obs": batch["obs"]}
            metrics.update(delayed(states) if run is None else
                           run(f"{self.name}_{delayed.__name__}", delayed, states))
        return metrics


def make_levels(agent, low_replay: ReplayBuffer | None, high_replay: ReplayBuffer | None,
                streams: dict, cfg) -> tuple[Level, Level]:
    """The agent's two levels, low then high (the order the loop updates them in). streams:
    by name, 'replay_lo', 'noise_lo', 'replay_hi', 'noise_hi', 'correction' (the trainer's)."""
    B, flush = cfg.td3.batch_size, cfg.train.flush_denormal
    low = Level("low", agent.low, low_replay,
                {"replay": streams.get("replay_lo"), "noise": streams["noise_lo"]},
                agent.action_dim, B, cfg.low.update_every, flush_denormal=flush)
    high = Level("high", agent.high, high_replay,
                 {"replay": streams.get("replay_hi"), "noise": streams["noise_hi"],
                  "correction": streams["correction"]},
                 agent.lo_dim, B, cfg.high.update_every, draw=agent.correction.draw,
                 flush_denormal=flush)
    return low, high
