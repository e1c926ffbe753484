"""CUDA checks: run where a GPU is present (skipped elsewhere). Select with `-m gpu`.

On the CPU, tests/test_graphs.py checks everything of the captured step but the capture."""

import copy
import warnings

import pytest
import torch
from conftest import STEP_KINDS, advance_until_both_update

from hflow.agents.level import make_levels

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


class FixedRNG:
    """The same draws on any device: generated on the CPU, then moved."""

    def __init__(self, device, seed=0):
        self.device, self.gen = device, torch.Generator().manual_seed(seed)

    def normal(self, *shape):
        return torch.randn((2, *shape), generator=self.gen).to(self.device)

    def uniform(self, *shape):
        return torch.rand((2, *shape), generator=self.gen).to(self.device)


@pytest.mark.parametrize("model", ["hiro", "ours"])
def test_cuda_updates_match_the_cpu_within_float_tolerance(make_trainer, tmp_path, model):
    cpu = advance_until_both_update(make_trainer(tmp_path, model, "cpu"))
    cuda_agent = copy.deepcopy(cpu.agent).to("cuda")
    B = cpu.cfg.td3.batch_size
    for name in ("low", "high"):
        batch = getattr(cpu, f"{name}_buffer").sample(B, FixedRNG("cpu", 1))
        for agent, device in ((cpu.agent, "cpu"), (cuda_agent, "cuda")):
            streams = {"noise_lo": FixedRNG(device), "noise_hi": FixedRNG(device),
                       "correction": FixedRNG(device, 2)}
            level = dict(zip(("low", "high"), make_levels(agent, None, None, streams, cpu.cfg)))
            on = {k: v.to(device) for k, v in batch.items()}
            for _ in range(4):  # actor and delayed steps included
                level[name].update(batch={**on, **level[name].draws()})
    for (name, a), b in zip(cpu.agent.state_dict().items(), cuda_agent.state_dict().values()):
        if isinstance(a, torch.Tensor) and a.is_floating_point():
            assert torch.allclose(a, b.cpu(), atol=1e-4, rtol=1e-3), name


@pytest.mark.parametrize("model", ["hiro", "ours"])
def test_captured_training_matches_eager_within_float_tolerance(make_trainer, tmp_path, model):
    """500 steps (both levels updating) with acting and updates replayed as CUDA graphs,
    and the same op by op: the same networks and optimizer moments."""
    runs = {}
    for capture in ("eager", "cuda"):
        runs[capture] = advance_until_both_update(
            make_trainer(tmp_path / capture, model, "cuda", capture=capture))
    assert set(runs["cuda"].graphs.entries) == STEP_KINDS
    eager, captured = (runs[c].agent.mutable_tensors() for c in ("eager", "cuda"))
    for i, (a, b) in enumerate(zip(eager, captured, strict=True)):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-3), i
    for level in ("low", "high"):
        a, b = (getattr(runs[c], f"{level}_buffer").data for c in ("eager", "cuda"))
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-3), level


@pytest.mark.parametrize("model", ["hiro", "ours"])
def test_cuda_step_syncs_only_to_hand_the_action_to_the_envs(make_trainer, tmp_path, model):
    trainer = make_trainer(tmp_path, model, "cuda")
    assert trainer.graphs.mode == "cuda"  # the default on CUDA: acting and updates captured
    advance_until_both_update(trainer)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            steps = 50
            for _ in range(steps):
                trainer.advance()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= steps, [str(w.message) for w in syncs[:5]]
    trainer.loss_log.check(trainer.seeds)  # finite losses
