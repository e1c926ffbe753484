"""The losses of every update, kept on the device between log points, and the optional
TensorBoard log: the torch half of hflow's metrics (hflow.metrics writes the CSV)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from hflow import HflowError
from hflow.metrics import LOSSES, UPDATE_METRICS, NonFiniteLossError


class LossLog:
    """Every update metric since the last log point (UPDATE_METRICS: the losses and the relabel
    accounting), kept on the device, one row per update.

    Recording is one copy per metric and update (no per-step check: on a GPU a check would
    force a sync every step). `check()` runs at log points and names the first non-finite step,
    member and loss (the losses only: an accounting share is NaN where it is undefined);
    `means()` gives the per-member means since the last `reset()`, NaN values left out.
    """

    def __init__(self, members: int, device, capacity: int = 1024):
        self.members, self.device = members, device
        self.values = {name: torch.empty(capacity, members, device=device)
                       for name in UPDATE_METRICS}
        self.reset()

    def reset(self) -> None:
        self.steps: dict[str, list[int]] = {name: [] for name in UPDATE_METRICS}

    def record(self, name: str, values: torch.Tensor, step: int) -> None:
        steps, rows = self.steps[name], self.values[name]
        if len(steps) == rows.shape[0]:  # grow by doubling: amortised, and rare
            grown = torch.empty(2 * rows.shape[0], self.members, device=self.device)
            grown[:len(steps)] = rows
            self.values[name] = rows = grown
        rows[len(steps)].copy_(values.detach())
        steps.append(step)

    def record_update(self, level: str, losses: dict[str, torch.Tensor], step: int) -> None:
        """One update's per-member losses of one level ('low', 'high'), as `<level>_<name>`."""
        for name, values in losses.items():
            self.record(f"{level}_{name}", values, step)

    def check(self, seeds: list[int]) -> None:
        for name in LOSSES:
            steps = self.steps[name]
            if not steps:
                continue
            bad = (~torch.isfinite(self.values[name][:len(steps)])).nonzero().cpu()
            if len(bad):
                row, k = (int(v) for v in bad[0])
                raise NonFiniteLossError(
                    f"loss '{name}' of member {k} (seed {seeds[k]}) became NaN or inf at env "
                    f"step {steps[row]}; training stopped, the last good checkpoint is kept")

    def means(self) -> list[dict[str, float]]:
        """Per member: {metric: mean since reset over its non-NaN values} (NaN where there
        were none)."""
        out = [{} for _ in range(self.members)]
        for name, steps in self.steps.items():
            mean = self.values[name][:len(steps)].double().nanmean(dim=0).cpu().tolist() \
                if steps else [math.nan] * self.members
            for k in range(self.members):
                out[k][name] = mean[k]
        return out

    def history(self, name: str) -> tuple[list[int], np.ndarray]:
        """(steps, values [n, K]) recorded for one loss since the last reset."""
        steps = self.steps[name]
        return steps, self.values[name][:len(steps)].cpu().numpy()

    def state_dict(self) -> dict:
        return {name: {"steps": list(steps), "values": self.values[name][:len(steps)].cpu()}
                for name, steps in self.steps.items()}

    def load_state_dict(self, state: dict) -> None:
        self.reset()
        for name, saved in state.items():
            for step, values in zip(saved["steps"], saved["values"]):
                self.record(name, values.to(self.device), step)


class TensorBoardLog:
    """Optional TensorBoard event files (`train.tensorboard`), one directory per seed
    (`seed<N>/tensorboard/`): every metrics.csv column as `metrics/<column>` at each
    evaluation, and every loss value as `loss/<name>` at the env step of its update, so a long
    cluster run can be watched live. A resumed run purges events past its checkpoint."""

    def __init__(self, seed_dirs: list[Path], purge_step: int | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise HflowError("train.tensorboard needs the tensorboard package: "
                             "pip install -e '.[tensorboard]'") from None
        self.writers = [SummaryWriter(str(Path(d) / "tensorboard"), purge_step=purge_step)
                        for d in seed_dirs]

    def write(self, rows: list[dict], losses: LossLog) -> None:
        """rows: each member's newest metrics row; losses: before its reset."""
        history = {name: losses.history(name) for name in UPDATE_METRICS}
        for k, (writer, row) in enumerate(zip(self.writers, rows, strict=True)):
            for column, value in row.items():
                if column != "step" and value == value:  # NaN: nothing to show yet
                    writer.add_scalar(f"metrics/{column}", value, row["step"])
            for name, (steps, values) in history.items():
                for step, value in zip(steps, values[:, k]):
                    writer.add_scalar(f"loss/{name}", float(value), step)
            writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
