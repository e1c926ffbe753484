"""Member-batched replay: ring buffers holding K members' items as rows of one tensor.

All K members insert in lockstep (same count), each samples its own indices from its own
stream. The low level stores single transitions; the high level stores c-step segments
(states s_t..s_{t+c}, the low-level actions, the goal, the summed reward, and whatever the
low-level policy needs for relabelling, e.g. the flow's condition).

Every field of an item lies side by side in one row of a [K, capacity, width] tensor, so an
insert is one copy and a sampled batch one gather; the fields of a batch are views into it.
"""

from __future__ import annotations

import math

import torch


class ReplayBuffer:
    def __init__(self, members: int, capacity: int, fields: dict[str, tuple[int, ...]],
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        self.members, self.capacity = members, capacity
        self.fields = dict(fields)
        self.slices, start = {}, 0
        for name, shape in self.fields.items():
            width = math.prod(shape)
            self.slices[name] = (start, width)
            start += width
        self.data = torch.zeros((members, capacity, start), dtype=dtype, device=device)
        self.pointer = 0
        self.size = 0
        self._rows = torch.arange(members, device=device)[:, None]

    def __len__(self) -> int:
        return self.size

    def _split(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """[K, N, width] -> {field: [K, N, *shape]} (views)."""
        return {name: rows.narrow(-1, start, width).unflatten(-1, self.fields[name])
                for name, (start, width) in self.slices.items()}

    @property
    def storage(self) -> dict[str, torch.Tensor]:
        """Every slot, per field: [K, capacity, *shape] views (slots past `size` are zeros)."""
        return self._split(self.data)

    def add(self, **values: torch.Tensor) -> None:
        """One item per member: values[name] is [K, *shape]."""
        if values.keys() != self.fields.keys():
            raise KeyError(f"replay fields are {sorted(self.fields)}, got {sorted(values)}")
        K = self.members
        self.data[:, self.pointer] = torch.cat([values[n].reshape(K, -1) for n in self.fields],
                                               dim=1)
        self.pointer = (self.pointer + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng) -> dict[str, torch.Tensor]:
        """[K, batch_size, *shape] per field, indices uniform over what each member holds."""
        index = (rng.uniform(batch_size) * self.size).long().clamp_(max=self.size - 1)
        flat = (index.to(self._rows.device) + self._rows * self.capacity).reshape(-1)
        rows = self.data.view(-1, self.data.shape[-1]).index_select(0, flat)
        return self._split(rows.view(self.members, batch_size, -1))

    def state_dict(self) -> dict:
        # Only the filled part (cloned: torch.save of a view writes its whole storage), so a
        # checkpoint early in a run stays small.
        return {"pointer": self.pointer, "size": self.size, "fields": dict(self.fields),
                "data": self.data[:, :self.size].clone().cpu()}

    def load_state_dict(self, state: dict) -> None:
        if state["fields"] != self.fields:
            raise KeyError(f"checkpoint replay fields {state['fields']} differ from "
                           f"{self.fields}")
        self.pointer, self.size = state["pointer"], state["size"]
        self.data[:, :self.size] = state["data"].to(self.data.device)
