"""Checkpoints: written atomically, the newest few kept, a corrupt newest one skipped.

A resume checkpoint holds everything a run needs to continue bit for bit: networks, target
networks, optimisers, replay buffers, every random stream, the envs' generators and the
counters. They are taken between episodes (at evaluation points), so no physics state is
needed. The final per-seed `policy.pt` holds the networks only.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch

from hflow.io import atomic_path

_NAME = re.compile(r"checkpoint-(\d+)\.pt$")


def save(state: dict, state_dir: str | Path, step: int, keep: int) -> Path:
    state_dir = Path(state_dir)
    path = state_dir / f"checkpoint-{step:012d}.pt"
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    for old in list_checkpoints(state_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(state_dir: str | Path) -> list[Path]:
    """Oldest first."""
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in state_dir.iterdir() if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found)]


def load_latest(state_dir: str | Path) -> dict | None:
    """The newest checkpoint that loads; a corrupt one is skipped with a warning."""
    for path in reversed(list_checkpoints(state_dir)):
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
            state["_path"] = str(path)
            return state
        except Exception as err:  # a torn or damaged file: fall back to the previous one
            warnings.warn(f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); "
                          f"falling back to the previous one", stacklevel=2)
    return None
