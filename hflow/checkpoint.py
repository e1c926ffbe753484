"""Checkpoints: written atomically and durably, loaded without running code.

A resume checkpoint holds everything a run needs to continue bit for bit: networks, target
networks, optimisers, replay buffers, every random stream, the envs' generators and the
counters. They are taken between episodes (at evaluation points), so no physics state is
needed. The final per-seed `policy.pt` holds the networks only.

Every checkpoint and policy.pt carries a SHA-256 of its contents (every tensor's bytes,
dtype and shape, and every plain value, in order), checked on load: a flipped bit that
`torch.load` accepts is caught, and such a checkpoint is set aside like a torn one.

Loading uses `torch.load(weights_only=True)`: tensors and plain data only, so a planted file
cannot run code (checkpoints travel through DVC remotes and shared cluster filesystems). A
checkpoint that asks to load a callable (what a crafted file does) or has another format
version stops the run with an error; one that cannot be read at all (a torn write, or not a
torch file) is set aside (renamed `*.unreadable`) and the previous one is used.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import shutil
import warnings
from pathlib import Path

import torch

from hflow import HflowError
from hflow.io import atomic_path

# policy.pt: 1 (no 'format' key) held all K members' networks and the member's index; 2 holds
# the seed's own networks, loadable into a one-member agent; 3 adds the checksum.
POLICY_FORMAT = 3
CHECKPOINT_VERSION = 6  # 2: flat replay rows, blocked random streams, hflow's own Adam;
#                         3: the levels named high and low, bounds not saved; 4: checksum;
#                         5: replay rows hold each level's TD3 input (obs, next_obs);
#                         6: the optimizers' moments in `agent` (modules), no `optim`
REQUIRED_KEYS = ("version", "config", "step", "wall_s", "agent", "replay", "rng", "env_rng",
                 "losses", "metrics", "checksum")
_NAME = re.compile(r"checkpoint-(\d+)\.pt$")


class CheckpointError(HflowError):
    pass


class ChecksumMismatch(ValueError):
    """The contents differ from what was written: treated like a torn file."""


def content_digest(obj) -> str:
    """SHA-256 over a nest of dicts, lists and tuples of tensors and plain values, in order
    (dict keys included): what `torch.save` wrote, whatever the file's byte layout."""
    digest = hashlib.sha256()

    def feed(x):
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            digest.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            digest.update(f"D{len(x)}".encode())
            for key, value in x.items():
                feed(key)
                feed(value)
        elif isinstance(x, list | tuple):
            digest.update(f"L{len(x)}".encode())
            for value in x:
                feed(value)
        else:
            digest.update(f"V{type(x).__name__}:{x!r};".encode())

    feed(obj)
    return digest.hexdigest()


def with_checksum(state: dict) -> dict:
    return {**state, "checksum": content_digest(state)}


def verify_checksum(state: dict, path: Path) -> dict:
    """`state` without its checksum, after checking it; ChecksumMismatch if it differs."""
    state = dict(state)
    expected = state.pop("checksum")
    if content_digest(state) != expected:
        raise ChecksumMismatch(f"{path}'s contents do not match the checksum written with "
                               f"them (the file was changed or damaged after writing)")
    return state


def write_torch(path: Path, obj) -> None:
    """torch.save of `obj`, with its checksum, atomically; a failed write is one line."""
    with atomic_path(path) as tmp:
        try:
            torch.save(with_checksum(obj), tmp)
        except RuntimeError as err:  # torch's writer reports a full disk this way
            free = shutil.disk_usage(path.parent).free / 2**20
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else "no reason"
            raise HflowError(f"writing {path} failed ({first}); {free:,.0f} MiB free on its "
                             f"filesystem: is it full? The previous files are intact") from None


def save(state: dict, state_dir: str | Path, step: int, keep: int) -> Path:
    state_dir = Path(state_dir)
    path = state_dir / f"checkpoint-{step:012d}.pt"
    write_torch(path, state)
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


def load(path: str | Path) -> dict:
    """One checkpoint, checked for safety, format version and keys."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "unsupported global" in str(err).lower():  # a callable: not something hflow wrote
            raise CheckpointError(
                f"{path} asks to load code ({_blocked(err)}), which hflow checkpoints never "
                f"do; refusing it, nothing was run. If you did not write it, find out who did; "
                f"delete it to resume from the previous checkpoint") from None
        raise
    if not isinstance(state, dict) or "version" not in state:
        # not something hflow wrote at all: set aside like a damaged file (load_latest)
        raise ValueError(f"{path} holds a {type(state).__name__}, not an hflow checkpoint")
    if state["version"] == 5 and "optim" in state:  # the same state, optimizers kept apart
        return _from_format_5(verify_checksum(state, path))
    if state["version"] != CHECKPOINT_VERSION:
        version = state["version"]
        raise CheckpointError(
            f"{path} has checkpoint format {version!r}, this hflow reads format "
            f"{CHECKPOINT_VERSION}; it was written by another hflow version. Resume it with "
            f"that version, or delete {path.parent} to start over")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: not a complete hflow "
                              f"checkpoint; delete it to fall back to the previous one")
    return verify_checksum(state, path)


def _from_format_5(state: dict) -> dict:
    """Format 5 kept each level's Adam moments in `optim`; format 6 holds them in `agent`
    under the optimizers' module names: the same numbers, moved."""
    agent = dict(state["agent"])
    for level, parts in state.pop("optim").items():
        for part, saved in parts.items():
            prefix = f"{level}.{part}_opt."
            for moment in ("exp_avg", "exp_avg_sq"):
                agent.update({f"{prefix}{moment}.{i}": t for i, t in enumerate(saved[moment])})
            agent[f"{prefix}step_count"] = saved["step"]
    return {**state, "agent": agent, "version": CHECKPOINT_VERSION}


def _blocked(err: Exception) -> str:
    for line in str(err).splitlines():
        if "unsupported global" in line.lower():
            return line.strip().rstrip(".")
    return "an unsupported global"


def load_latest(state_dir: str | Path) -> dict | None:
    """The newest checkpoint that can be read, or None when there is none.

    A checkpoint that cannot be read (a torn or damaged file) is renamed `*.unreadable`, so
    that it neither shadows newer ones nor makes the run prune a good one, and the previous
    one is used. If none can be read, the run stops rather than start over."""
    paths = list_checkpoints(state_dir)
    if not paths:
        return None
    failures = []
    for path in reversed(paths):
        try:
            state = load(path)
        except CheckpointError:
            raise
        except Exception as err:  # a torn or damaged file
            failures.append((path, err))
            continue
        for bad, err in failures:
            aside = bad.with_name(bad.name + ".unreadable")
            bad.rename(aside)
            warnings.warn(f"checkpoint {bad} cannot be read ({type(err).__name__}: {err}); "
                          f"moved to {aside.name}, falling back to the previous one",
                          stacklevel=2)
        state["_path"] = str(path)
        return state
    listing = "; ".join(f"{p.name}: {type(e).__name__}: {str(e)[:120]}" for p, e in failures)
    raise CheckpointError(
        f"no checkpoint in {state_dir} can be read ({listing}). Nothing was changed. To start "
        f"this run over, delete {state_dir} (or pass another --out / --state-dir)")


def load_policy_file(path: str | Path) -> dict:
    """A policy.pt's contents (tensors and plain data only), checksum checked (format 3 on);
    any file that is not an intact policy.pt is a one-line error naming it."""
    path = Path(path)
    rerun = "rerun the training command that wrote it (it resumes and writes it again)"
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "unsupported global" in str(err).lower():
            raise HflowError(f"{path} asks to load code ({_blocked(err)}), which hflow's "
                             f"policy.pt never does; refusing it, nothing was run") from None
        # (not torch's own text: it advises weights_only=False, which would run the file)
        raise HflowError(f"{path} is not a policy.pt hflow wrote (it holds objects other "
                         f"than tensors and plain data); {rerun}") from None
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        raise HflowError(f"{path} cannot be read ({type(err).__name__}: {str(err)[:120]}): a "
                         f"truncated or damaged file; {rerun}") from None
    if not isinstance(saved, dict) or "nets" not in saved:
        raise HflowError(f"{path} is not a policy.pt hflow wrote (no networks in it)")
    if saved.get("format", 1) >= 3:
        try:
            saved = verify_checksum(saved, path)
        except KeyError:
            raise HflowError(f"{path} has policy format 3 but no checksum; {rerun}") from None
        except ChecksumMismatch as err:
            raise HflowError(f"{err}; {rerun}") from None
    return saved
