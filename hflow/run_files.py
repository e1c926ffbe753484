"""What a run writes, and where: per seed `seed<N>/` with its record (config.json), its
metrics rows (metrics.csv, optionally TensorBoard) and its final policy (policy.pt); the
group's resume checkpoints in the state dir. Also the checks that a run never overwrites what
another run wrote, and that a checkpoint it resumes is of its own configuration.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import torch

from hflow import HflowError
from hflow.checkpoint import POLICY_FORMAT, load_latest, save, write_torch
from hflow.config import RESUMABLE_CHANGES, RunConfig, flatten
from hflow.io import remove_stale_temp_files, write_json
from hflow.layout import METRICS, POLICY, RECORD, group_name, seed_dir
from hflow.loss_log import LossLog, TensorBoardLog
from hflow.metrics import MetricsCSV
from hflow.nets import member_state_dict
from hflow.runlock import RunLock


def config_hash(config: dict) -> str:
    """What identifies a run's configuration: SHA-256 of its keys, those a resume may change
    left out (a run resumed with more steps is the same run)."""
    kept = {k: v for k, v in flatten(config).items() if k not in RESUMABLE_CHANGES}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("hflow", "torch", "mujoco", "gymnasium", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    try:
        root = Path(__file__).resolve().parent.parent
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "hflow"],
                               check=True, capture_output=True, text=True).stdout.strip()
        out["git_commit"] = commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        out["git_commit"] = "unknown"
    return out


def machine() -> dict[str, str]:
    """The CPU and the float kernels torch picked on it: a run's numbers are bit for bit the
    same only where these match (its code and versions being the same)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "platform": platform.platform()}


def _rows_past_start(metrics: Path) -> bool:
    """Whether a metrics.csv holds rows after step 0's (a run killed before its first
    checkpoint leaves only that row, which a new start writes again)."""
    try:
        return len(metrics.read_text().splitlines()) > 2  # the header, step 0
    except FileNotFoundError:
        return False


class RunFiles:
    def __init__(self, cfg: RunConfig, out_dir: str | Path, state_dir: str | Path | None,
                 record: dict, metric_columns: tuple[str, ...]):
        """record: what config.json holds besides the config, the seed and its member index
        (the goal space, the device)."""
        self.cfg, self.seeds = cfg, list(cfg.train.seeds)
        self.out_dir = Path(out_dir)
        self.state_dir = Path(state_dir) if state_dir else self.out_dir / (
            "state-" + group_name(self.seeds))
        self.record, self.package_versions = record, None
        self.metrics = [MetricsCSV(self.seed_dir(s) / METRICS, metric_columns)
                        for s in self.seeds]
        self.tensorboard: TensorBoardLog | None = None

    def seed_dir(self, seed: int) -> Path:
        return Path(seed_dir(self.out_dir, seed))

    @contextmanager
    def locked(self):
        """The run's lock on its state and seed directories, held throughout; what writes
        interrupted by a kill left behind is removed first."""
        dirs = [self.state_dir, *(self.seed_dir(s) for s in self.seeds)]
        with RunLock(dirs):
            for directory in dirs:
                remove_stale_temp_files(directory)
            try:
                yield self
            finally:
                if self.tensorboard is not None:
                    self.tensorboard.close()

    # -- resume checkpoints ----------------------------------------------------------------------
    def latest_checkpoint(self) -> dict | None:
        """The newest readable checkpoint, None if there is none; one of another
        configuration stops the run, naming the keys that differ."""
        state = load_latest(self.state_dir)
        if state is None:
            return None
        saved, now = flatten(state["config"]), flatten(self.cfg.to_dict())
        changed = [k for k in now if saved.get(k) != now[k] and k not in RESUMABLE_CHANGES]
        if changed:
            raise HflowError(
                f"{self.state_dir} holds a checkpoint of a different configuration (differs in "
                + ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed)
                + "); use another --out (its own state dir comes with it), or delete that "
                "directory")
        if state["step"] > self.cfg.train.steps:
            raise HflowError(f"checkpoint at step {state['step']} is past train.steps = "
                             f"{self.cfg.train.steps}")
        return state

    def save_checkpoint(self, state: dict, step: int) -> None:
        save(state, self.state_dir, step, self.cfg.train.checkpoints_kept)

    # -- records, metrics and policies beside the results ----------------------------------------
    def check_seed_dirs(self, resumed: bool) -> None:
        """Stops before a seed directory that another run wrote would be overwritten: one of
        another configuration (its config.json's `config_hash`), of another seed group, or
        results of this one whose checkpoints are not in this run's state dir."""
        mine = config_hash(self.cfg.to_dict())
        fix = "use another --out, or delete that directory to train it anew"
        for seed in self.seeds:
            directory = self.seed_dir(seed)
            record = directory / RECORD
            if not record.is_file():
                # Rows without their record: a run of unknown configuration. (A policy.pt
                # alone is not: a workflow's forced rerun deletes a job's outputs, metrics.csv
                # and config.json, and leaves the policy to be written anew.)
                if not resumed and _rows_past_start(directory / METRICS):
                    results = [p.name for p in (directory / METRICS, directory / POLICY)
                               if p.is_file()]
                    raise HflowError(f"{directory} holds results ({', '.join(results)}) but no "
                                     f"config.json: a run of unknown configuration, which hflow "
                                     f"does not replace; {fix}")
                continue
            try:
                theirs = json.loads(record.read_text())
                config, group = theirs["config"], theirs["group_seeds"]
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise HflowError(f"{record} is not a run record hflow can read ({err}); {fix}") \
                    from None
            if group != self.seeds:
                raise HflowError(f"{directory} holds seed {seed} of the seed group "
                                 f"{','.join(map(str, group))}, not of this run's group "
                                 f"{','.join(map(str, self.seeds))}; {fix}")
            if theirs.get("config_hash", config_hash(config)) != mine:
                old, now = flatten(config), flatten(self.cfg.to_dict())
                differ = [k for k in now if old.get(k) != now[k] and k not in RESUMABLE_CHANGES]
                raise HflowError(f"{directory} holds a run of another configuration (differs in "
                                 f"{', '.join(differ[:5]) or 'its keys'}); {fix}")
            if not resumed and _rows_past_start(directory / METRICS):
                raise HflowError(f"{directory} holds results of this configuration, but "
                                 f"{self.state_dir} has no checkpoint to continue them; pass the "
                                 f"--state-dir that wrote them, or {fix.split(', or ')[1]}")

    def write_records(self) -> None:
        """config.json per seed, written at the start and again at every evaluation: a record
        another process removed (Snakemake's --rerun-incomplete beside a running workflow
        deletes a running job's outputs) comes back with the next metrics row."""
        if self.package_versions is None:
            self.package_versions = {**versions(), "machine": machine()}
        for k, seed in enumerate(self.seeds):
            write_json(self.seed_dir(seed) / RECORD, {
                "config": self.cfg.to_dict(), "config_hash": config_hash(self.cfg.to_dict()),
                "seed": seed, "group_seeds": self.seeds, "member": k, **self.record,
                "versions": self.package_versions,
            })

    def open_tensorboard(self, resumed_at: int | None) -> None:
        if self.cfg.train.tensorboard:
            # the evaluation at the checkpoint's step was written before the checkpoint: keep
            # it, drop only what a killed process wrote after
            self.tensorboard = TensorBoardLog([self.seed_dir(s) for s in self.seeds],
                                              purge_step=None if resumed_at is None
                                              else resumed_at + 1)

    def append_metrics(self, rows: list[dict], losses: LossLog) -> None:
        """One row per seed (and every loss value to TensorBoard), then the records again."""
        for metrics, row in zip(self.metrics, rows, strict=True):
            metrics.append(row)
        self.write_records()
        if self.tensorboard is not None:
            self.tensorboard.write([m.rows[-1] for m in self.metrics], losses)

    def write_policies(self, nets: dict[str, torch.nn.Module], step: int) -> None:
        """Each seed's policy.pt: that seed's networks only, with its config and step."""
        K = len(self.seeds)
        for k, seed in enumerate(self.seeds):
            own = {name: member_state_dict(net, k, K) for name, net in nets.items()}
            write_torch(self.seed_dir(seed) / POLICY, {
                "format": POLICY_FORMAT, "config": self.cfg.to_dict(), "seed": seed,
                "step": step, "nets": own})
