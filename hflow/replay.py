"""Member-batched replay: ring buffers whose fields are [K, capacity, *shape] tensors.

All K members insert in lockstep (same count), each samples its own indices from its own
stream. The low level stores single transitions; the high level stores c-step segments
(states s_t..s_{t+c}, the low-level actions, the goal, the summed reward, and whatever the
low-level policy needs for relabelling, e.g. the flow's condition).
"""

from __future__ import annotations

import torch

from hflow.seeding import MemberRNG


class ReplayBuffer:
    def __init__(self, members: int, capacity: int, fields: dict[str, tuple[int, ...]],
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        self.members, self.capacity = members, capacity
        self.fields = dict(fields)
        self.storage = {name: torch.zeros((members, capacity, *shape), dtype=dtype, device=device)
                        for name, shape in self.fields.items()}
        self.pointer = 0
        self.size = 0
        self._rows = torch.arange(members, device=device)[:, None]

    def __len__(self) -> int:
        return self.size

    def add(self, **values: torch.Tensor) -> None:
        """One item per member: values[name] is [K, *shape]."""
        if values.keys() != self.storage.keys():
            raise KeyError(f"replay fields are {sorted(self.storage)}, got {sorted(values)}")
        for name, value in values.items():
            self.storage[name][:, self.pointer] = value
        self.pointer = (self.pointer + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: MemberRNG) -> dict[str, torch.Tensor]:
        """[K, batch_size, *shape] per field, indices uniform over what each member holds."""
        index = (rng.uniform(batch_size) * self.size).long().clamp_(max=self.size - 1)
        index = index.to(self._rows.device)
        return {name: data[self._rows, index] for name, data in self.storage.items()}

    def state_dict(self) -> dict:
        # Only the filled part (cloned: torch.save of a view writes its whole storage), so a
        # checkpoint early in a run stays small.
        return {"pointer": self.pointer, "size": self.size,
                "storage": {n: d[:, :self.size].clone().cpu() for n, d in self.storage.items()}}

    def load_state_dict(self, state: dict) -> None:
        if set(state["storage"]) != set(self.storage):
            raise KeyError(f"checkpoint replay fields {sorted(state['storage'])} differ from "
                           f"{sorted(self.storage)}")
        self.pointer, self.size = state["pointer"], state["size"]
        for name, data in state["storage"].items():
            self.storage[name][:, :self.size] = data.to(self.storage[name].device)
