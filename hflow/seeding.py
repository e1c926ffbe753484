"""Per-member random streams: member k's draws depend on its own seed only.

That is what makes K seeds trained in lockstep in one process give the same numbers as K
separate runs. Each consumer gets its own named stream, so adding a draw in one place does not
shift the numbers of another.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for (run seed, stream name), stable across Python processes."""
    digest = hashlib.sha256(f"{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class MemberRNG:
    """One torch generator per member; draws come back stacked as [K, *shape]."""

    def __init__(self, seeds: list[int], stream: str, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.generators = [torch.Generator(self.device).manual_seed(stream_seed(s, stream))
                           for s in seeds]

    def normal(self, *shape: int) -> torch.Tensor:
        return torch.stack([torch.randn(shape, generator=g, device=self.device)
                            for g in self.generators])

    def uniform(self, *shape: int) -> torch.Tensor:
        return torch.stack([torch.rand(shape, generator=g, device=self.device)
                            for g in self.generators])

    def state_dict(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self.generators]

    def load_state_dict(self, states: list[torch.Tensor]) -> None:
        for g, s in zip(self.generators, states, strict=True):
            g.set_state(s.cpu())  # states are CPU byte tensors, also for CUDA generators


class MemberNumpyRNG:
    """One numpy generator per member, for what happens on the host (env resets, noise)."""

    def __init__(self, seeds: list[int], stream: str):
        self.generators = [np.random.default_rng(stream_seed(s, stream)) for s in seeds]

    def normal(self, *shape: int) -> np.ndarray:
        return np.stack([g.standard_normal(shape) for g in self.generators])

    def uniform(self, low, high, *shape: int) -> np.ndarray:
        return np.stack([g.uniform(low, high, shape) for g in self.generators])

    def state_dict(self) -> list[dict]:
        return [g.bit_generator.state for g in self.generators]

    def load_state_dict(self, states: list[dict]) -> None:
        for g, s in zip(self.generators, states, strict=True):
            g.bit_generator.state = s
