"""The one clipping rule for goals and actions: elementwise into [-bound, bound].

A level's outputs have a bound per element: the subgoal bound (HIRO's subgoal half-range)
for goals, the action bound (the robot's ctrlrange) for actions. Exploration noise, HIRO's
candidates and the flow's relabelled goals are all brought back inside it here.
"""

from __future__ import annotations

import torch


def clip_to_bound(x: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    """x clipped elementwise to [-bound, bound]; bound broadcasts over x's leading dims."""
    return torch.maximum(torch.minimum(x, bound), -bound)
