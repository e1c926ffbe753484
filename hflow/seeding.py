"""Per-member random streams: member k's draws depend on its own seed only.

That is what makes K seeds trained in lockstep in one process give the same numbers as K
separate runs. Each consumer gets its own named stream, so adding a draw in one place does not
shift the numbers of another.
"""

from __future__ import annotations

import hashlib
import math

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


class BlockedRNG:
    """A MemberRNG that draws `block` samples of each requested shape at once.

    Same interface (`normal(*shape)`, `uniform(*shape)` -> [K, *shape]), but one generator call
    per member per `block` draws instead of one per draw: the per-step cost no longer grows
    with K. Member k's numbers still come from member k's generator alone, so K seeds in
    lockstep equal K separate runs; the unserved rest of each block is part of the state, so
    a resumed run draws exactly what an uninterrupted one would.
    """

    def __init__(self, seeds: list[int], stream: str, device: torch.device | str = "cpu",
                 block: int = 256, max_elements: int = 65536):
        self.rng = MemberRNG(seeds, stream, device)
        # Draws per block: `block`, fewer for large shapes (the correction's [B, 8, lo]
        # noise), so that a block holds at most `max_elements` numbers per member.
        self.block, self.max_elements = block, max_elements
        self.blocks: dict[tuple, torch.Tensor] = {}  # (kind, *shape) -> [K, block, *shape]
        self.used: dict[tuple, int] = {}

    def _draw(self, kind: str, shape: tuple[int, ...]) -> torch.Tensor:
        key = (kind, *shape)
        block = self.blocks.get(key)
        used = self.used.get(key, 0)
        if block is None or used == block.shape[1]:
            count = max(1, min(self.block, self.max_elements // max(1, math.prod(shape))))
            draw = self.rng.normal if kind == "normal" else self.rng.uniform
            self.blocks[key] = block = draw(count, *shape)
            used = 0
        self.used[key] = used + 1
        return block[:, used]

    def normal(self, *shape: int) -> torch.Tensor:
        return self._draw("normal", shape)

    def uniform(self, *shape: int) -> torch.Tensor:
        return self._draw("uniform", shape)

    def state_dict(self) -> dict:
        return {"generators": self.rng.state_dict(),
                "blocks": [(list(k), v.cpu(), self.used[k]) for k, v in self.blocks.items()]}

    def load_state_dict(self, state: dict) -> None:
        self.rng.load_state_dict(state["generators"])
        self.blocks, self.used = {}, {}
        for key, block, used in state["blocks"]:
            key = (key[0], *key[1:])
            self.blocks[key] = block.to(self.rng.device)
            self.used[key] = used
