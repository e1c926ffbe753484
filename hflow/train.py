"""The training loop: K seeds of one configuration in lockstep, HIRO's two-level schedule.

Per env step (`Trainer.advance`): the low level acts, the K envs step, the next goal is
carried by h(s, g, s') or, at a segment's end, picked anew by the high level, the low-level
transition is stored, a finished c-step segment goes to the high-level buffer, then the low
level updates (every step) and the high level (every 10 steps) once the warm-up is over.
Every `eval_every` steps: evaluate and append a metrics row per seed; every
`checkpoint_every` steps (and at the end) also checkpoint. Rerunning the same command
resumes from the newest readable checkpoint. Acting and the updates go through
`self.graphs`, which on CUDA replays them as captured graphs (hflow.graphs).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from hflow import HflowError
from hflow.agents.hiro import HierarchicalAgent
from hflow.bounds import clip_to_bound
from hflow.checkpoint import (
    CHECKPOINT_VERSION,
    POLICY_FORMAT,
    CheckpointError,
    load_latest,
    save,
    with_checksum,
)
from hflow.config import RunConfig, flatten
from hflow.envs import get_task, goal_space
from hflow.envs.batch import EnvBatch, task_env
from hflow.evaluate import EVAL_METRICS, evaluate, make_eval_envs, metric_names
from hflow.graphs import StepGraphs
from hflow.io import atomic_path, remove_stale_temp_files, write_json
from hflow.losses import LossLog, TensorBoardLog
from hflow.metrics import MetricsCSV, NonFiniteLossError
from hflow.nets import member_state_dict
from hflow.progress import Progress
from hflow.replay import ReplayBuffer
from hflow.runlock import RunLock
from hflow.seeding import BlockedRNG, stream_seed

# Keys that may differ between a checkpoint and the command that resumes it.
# (Not the device: torch's CPU and CUDA generator states do not convert into each other.)
RESUMABLE_CHANGES = ("train.steps", "train.checkpoints_kept", "train.torch_threads",
                     "train.checkpoint_every", "train.env_threads", "train.tensorboard",
                     "train.capture")


def config_hash(config: dict) -> str:
    """What identifies a run's configuration: SHA-256 of its keys, those a resume may change
    left out (a run resumed with more steps is the same run)."""
    kept = {k: v for k, v in flatten(config).items() if k not in RESUMABLE_CHANGES}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def check_replay_fits(members: int, cfg: RunConfig, low: dict, high: dict,
                      device: torch.device) -> None:
    """Both replay buffers are allocated whole at the start: a size that cannot fit in the
    device's memory is an error naming the keys, not an allocation failure (or a swap storm)."""
    need = sum(members * size * sum(math.prod(shape) for shape in fields.values()) * 4
               for size, fields in ((cfg.low.buffer_size, low), (cfg.high.buffer_size, high)))
    if device.type == "cuda":
        have = torch.cuda.mem_get_info(device)[1]
    else:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have:
        raise HflowError(f"the replay buffers need {need / 2**30:,.1f} GiB "
                         f"(low.buffer_size = {cfg.low.buffer_size:,}, high.buffer_size = "
                         f"{cfg.high.buffer_size:,}, {members} seeds) but this {device.type} "
                         f"has {have / 2**30:,.1f} GiB; use smaller buffers or fewer seeds per "
                         f"job")


def _rows_past_start(metrics: Path) -> bool:
    """Whether a metrics.csv holds rows after step 0's (a run killed before its first
    checkpoint leaves only that row, which a new start writes again)."""
    try:
        return len(metrics.read_text().splitlines()) > 2  # the header, step 0
    except FileNotFoundError:
        return False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HflowError(f"train.device = {name!r} but CUDA is not available here; use cpu "
                         f"or auto")
    return device


def capture_mode(setting: str, device: torch.device) -> str:
    """`train.capture` -> a StepGraphs mode on this device ('auto': graphs on CUDA only)."""
    if setting == "auto":
        return "cuda" if device.type == "cuda" else "eager"
    return setting


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


@dataclass
class Segment:
    """The c-step segment being collected for the high-level buffer."""

    states: list
    actions: list
    extras: dict
    goal: torch.Tensor
    reward: np.ndarray


class Trainer:
    def __init__(self, cfg: RunConfig, out_dir: str | Path, state_dir: str | Path | None = None,
                 progress: bool = True):
        self.cfg = cfg
        self.seeds = list(cfg.train.seeds)
        self.K = len(self.seeds)
        self.out_dir = Path(out_dir)
        self.state_dir = Path(state_dir) if state_dir else self.out_dir / (
            "state-seeds-" + "-".join(map(str, self.seeds)))
        self.device = resolve_device(cfg.train.device)
        torch.set_num_threads(cfg.train.torch_threads)
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True)
        self.task = get_task(cfg.task.name)
        self.goals = goal_space(self.task, cfg.task.hi, cfg.task.lo, cfg.task.eval_target)
        self.show_progress = progress

        self.agent = HierarchicalAgent(cfg, self.task, self.goals, self.seeds).to(self.device)
        # acting and the updates: eager, or recorded once and replayed as CUDA graphs
        self.graphs = StepGraphs(capture_mode(cfg.train.capture, self.device), self.device,
                                 self.K, self.agent.mutable_tensors)
        low, high = self.agent.replay_fields()
        check_replay_fits(self.K, cfg, low, high, self.device)
        self.low_buffer = ReplayBuffer(self.K, cfg.low.buffer_size, low, self.device)
        self.high_buffer = ReplayBuffer(self.K, cfg.high.buffer_size, high, self.device)
        # One stream per consumer, drawn in blocks (one generator call per member per block).
        self.rng = {name: BlockedRNG(self.seeds, name, self.device)
                    for name in ("replay_lo", "replay_hi", "noise_lo", "noise_hi", "correction",
                                 "explore_lo", "explore_hi", "warmup")}
        self.envs = EnvBatch([[task_env(cfg.task, "train")] for _ in self.seeds],
                             cfg.train.env_threads)
        self.eval_envs = make_eval_envs(cfg, self.seeds, self.goals, cfg.train.env_threads)
        self.loss_log = LossLog(self.K, self.device)
        per_target = tuple(c for c in metric_names(self.goals) if c not in EVAL_METRICS)
        self.metrics = [MetricsCSV(self.seed_dir(s) / "metrics.csv", per_target)
                        for s in self.seeds]
        self.step = 0
        self.wall_offset = 0.0
        self.start_time = time.monotonic()
        self.interval_start = (self.start_time, 0)
        self.episode_returns: list[list[float]] = [[] for _ in self.seeds]
        self.tensorboard: TensorBoardLog | None = None
        self.package_versions: dict[str, str] | None = None

    def seed_dir(self, seed: int) -> Path:
        return self.out_dir / f"seed{seed}"

    # -- records beside the results -------------------------------------------------------------
    def check_seed_dirs(self, resumed: bool) -> None:
        """Stops before a seed directory that another run wrote would be overwritten: one of
        another configuration (its config.json's `config_hash`), of another seed group, or
        results of this one whose checkpoints are not in this run's state dir."""
        mine = config_hash(self.cfg.to_dict())
        fix = "use another --out, or delete that directory to train it anew"
        for seed in self.seeds:
            directory = self.seed_dir(seed)
            record = directory / "config.json"
            if not record.is_file():
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
            if not resumed and _rows_past_start(directory / "metrics.csv"):
                raise HflowError(f"{directory} holds results of this configuration, but "
                                 f"{self.state_dir} has no checkpoint to continue them; pass the "
                                 f"--state-dir that wrote them, or {fix.split(', or ')[1]}")

    def write_run_records(self) -> None:
        """config.json per seed, written at the start and again at every evaluation: a record
        another process removed (Snakemake's --rerun-incomplete beside a running workflow
        deletes a running job's outputs) comes back with the next metrics row."""
        if self.package_versions is None:
            self.package_versions = versions()
        for k, seed in enumerate(self.seeds):
            write_json(self.seed_dir(seed) / "config.json", {
                "config": self.cfg.to_dict(),
                "config_hash": config_hash(self.cfg.to_dict()),
                "seed": seed,
                "group_seeds": self.seeds,
                "member": k,
                "goal_space": self.goals.to_dict(),
                "device": str(self.device),
                "versions": self.package_versions,
            })

    # -- checkpointing ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "version": CHECKPOINT_VERSION,
            "config": self.cfg.to_dict(),
            "step": self.step,
            "wall_s": self.wall_offset + (time.monotonic() - self.start_time),
            "agent": self.agent.state_dict(),
            "optim": {"high": self.agent.high.optimizer_state(),
                      "low": self.agent.low.optimizer_state()},
            "replay": {"low": self.low_buffer.state_dict(), "high": self.high_buffer.state_dict()},
            "rng": {k: v.state_dict() for k, v in self.rng.items()},
            "env_rng": self.envs.rng_states(),
            "losses": self.loss_log.state_dict(),
            # The rows live here too: a workflow manager may delete a failed job's outputs.
            "metrics": [m.rows for m in self.metrics],
        }

    def try_resume(self) -> bool:
        state = load_latest(self.state_dir)
        if state is None:
            return False
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
        try:
            self._load_state(state)
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise CheckpointError(
                f"{state['_path']} does not fit this run ({type(err).__name__}: "
                f"{str(err)[:300]}); delete {self.state_dir} to start over") from None
        self.step = state["step"]
        self.wall_offset = state["wall_s"]
        for m, rows in zip(self.metrics, state["metrics"], strict=True):
            m.restore(rows)
        print(f"[hflow] resumed from {state['_path']} at step {self.step:,}", flush=True)
        return True

    def _load_state(self, state: dict) -> None:
        self.agent.load_state_dict(state["agent"])
        self.agent.high.load_optimizer_state(state["optim"]["high"])
        self.agent.low.load_optimizer_state(state["optim"]["low"])
        self.low_buffer.load_state_dict(state["replay"]["low"])
        self.high_buffer.load_state_dict(state["replay"]["high"])
        for k, v in self.rng.items():
            v.load_state_dict(state["rng"][k])
        self.envs.load_rng_states(state["env_rng"])
        self.loss_log.load_state_dict(state["losses"])

    # -- the loop --------------------------------------------------------------------------------
    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        if self.device.type != "cuda":
            return torch.as_tensor(x, dtype=torch.float32)
        # From pinned memory without waiting: a pageable copy would sync the host every step
        # (the action's copy back is the step's one sync).
        host = torch.from_numpy(np.asarray(x, dtype=np.float32)).pin_memory()
        return host.to(self.device, non_blocking=True)

    def run(self) -> None:
        """Trains to `train.steps`, resuming first; holds the run's lock throughout."""
        dirs = [self.state_dir, *(self.seed_dir(s) for s in self.seeds)]
        with RunLock(dirs):
            for directory in dirs:  # what writes interrupted by a kill left behind
                remove_stale_temp_files(directory)
            try:
                self._run()
            finally:
                if self.tensorboard is not None:
                    self.tensorboard.close()

    def _run(self) -> None:
        cfg = self.cfg
        self.start_time = time.monotonic()
        resumed = self.try_resume()
        self.check_seed_dirs(resumed)
        self.interval_start = (self.start_time, self.step)
        self.write_run_records()
        if cfg.train.tensorboard:
            self.tensorboard = TensorBoardLog([self.seed_dir(s) for s in self.seeds],
                                              purge_step=self.step if resumed else None)
        label = f"{cfg.model} {self.task.name} hi={self.goals.hi} lo={self.goals.lo} " \
                f"seeds={','.join(map(str, self.seeds))}"
        progress = Progress(cfg.train.steps, label) if self.show_progress else None
        if not resumed:
            self._evaluate_and_checkpoint(progress)

        total = cfg.train.steps
        while self.step < total:
            self.advance()
            if self.step % cfg.train.eval_every == 0 or self.step == total:
                self._evaluate_and_checkpoint(progress)
            elif progress is not None:
                progress.update(self.step)
        if progress is not None:
            progress.close()
        self._write_policies()

    def advance(self) -> None:
        """One env step of all members, top to bottom, with the updates that follow it."""
        cfg, t = self.cfg, self.step
        c, T = cfg.hierarchy.c, cfg.task.episode_steps
        # -- episode start: reset the envs; the high level picks the first goal
        if t % T == 0:
            self._begin_episode()
        if t % c == 0:
            self.segment = Segment([self.state], [], {}, self.goal, np.zeros(self.K))

        # -- the low level acts (exploration noise, clipped to the action bounds)
        if t < cfg.train.warmup and cfg.train.warmup_policy == "uniform":
            # uniform warm-up: the policy still gives the extras the segment stores
            extras = self.agent.act_low(self.state, self.goal)[1]
            action = self._uniform(self.agent.action_bound)
        else:
            extras = self.graphs("act_low", 0, self._act_low,
                                 {"state": self.state, "goal": self.goal},
                                 self.rng["explore_lo"])
            action = extras.pop("action")
        action_np = action.cpu().numpy()
        self._check_finite(action_np)
        obs, reward, _, _ = self.envs.step(action_np)
        next_state = self._tensor(obs)

        # -- the next goal: h(s, g, s') inside a segment; at a segment's end the high level
        # picks the next segment's goal at s' (not at an episode's end: a new episode starts)
        carried = self.agent.goal_transition(self.state, self.goal, next_state)
        segment_end, episode_end = (t + 1) % c == 0, (t + 1) % T == 0
        new_goal = self._pick_goal(next_state, t + 1) if segment_end and not episode_end \
            else None
        stored_next_goal = carried
        if new_goal is not None and cfg.hierarchy.segment_end_goal == "new_goal":
            stored_next_goal = new_goal  # HIRO stores the goal the high level just chose

        # -- store: the low-level transition, and the segment once it has c steps
        self.low_buffer.add(
            state=self.state[:, 0], goal=self.goal[:, 0], action=action[:, 0],
            reward=self.agent.intrinsic_reward(carried)[:, 0],
            next_state=next_state[:, 0], next_goal=stored_next_goal[:, 0])
        seg = self.segment
        seg.states.append(next_state)
        seg.actions.append(action)
        for name, value in extras.items():
            seg.extras.setdefault(name, []).append(value)
        seg.reward += reward[:, 0]
        self.episode_return += reward[:, 0]
        if segment_end:
            self.high_buffer.add(
                states=torch.stack(seg.states, dim=2)[:, 0],
                actions=torch.stack(seg.actions, dim=2)[:, 0],
                goal=seg.goal[:, 0], target=self.target[:, 0],
                reward=self._tensor(seg.reward)[:, None],
                discount=self._segment_discount(episode_end),
                **{k: torch.stack(v, dim=2)[:, 0] for k, v in seg.extras.items()})
        if episode_end:
            for k in range(self.K):
                self.episode_returns[k].append(float(self.episode_return[k]))
        self.state = next_state
        self.goal = new_goal if new_goal is not None else carried

        # -- learn
        self.step += 1
        if self.step >= cfg.train.warmup:
            self._updates()

    def _begin_episode(self) -> None:
        seeds = None
        if self.step == 0:  # later resets continue each env's own generator
            seeds = np.array([[stream_seed(s, "env") % 2**32] for s in self.seeds])
        obs, target = self.envs.reset(seeds)
        self.state = self._tensor(obs)
        self.target = self._tensor(target)
        self.episode_return = np.zeros(self.K)
        self.goal = self._pick_goal(self.state, self.step)

    def _segment_discount(self, episode_end: bool) -> torch.Tensor:
        """[K, 1]: 0 for the segment that ends an episode when the high level treats episode
        ends as terminal (HIRO), else 1."""
        terminal = episode_end and self.cfg.hierarchy.high_episode_end == "terminal"
        return torch.full((self.K, 1), 0.0 if terminal else 1.0, device=self.device)

    def _pick_goal(self, state: torch.Tensor, step: int) -> torch.Tensor:
        """The high level's goal for the segment starting at `step`, with exploration noise."""
        if step < self.cfg.train.warmup and self.cfg.train.warmup_policy == "uniform":
            return self._uniform(self.agent.subgoal_bound)
        return self.graphs("act_high", 0, self._act_high, {"state": state, "target": self.target},
                           self.rng["explore_hi"])["goal"]

    # The step functions run by self.graphs: fn(key, tensors, *rngs) -> tensors.
    def _act_low(self, _, x: dict, explore_rng) -> dict[str, torch.Tensor]:
        action, extras = self.agent.act_low(x["state"], x["goal"])
        return {"action": self._noisy(action, explore_rng, self.cfg.low.explore_sigma,
                                      self.agent.action_bound), **extras}

    def _act_high(self, _, x: dict, explore_rng) -> dict[str, torch.Tensor]:
        goal = self.agent.act_high(x["state"], x["target"])
        return {"goal": self._noisy(goal, explore_rng, self.cfg.high.explore_sigma,
                                    self.agent.subgoal_bound)}

    def _update_low(self, phase: int, batch: dict, noise_rng) -> dict[str, torch.Tensor]:
        return self.agent.update_low(batch, noise_rng, phase)

    def _update_high(self, phase: int, batch: dict, noise_rng,
                     correction_rng) -> dict[str, torch.Tensor]:
        return self.agent.update_high(batch, noise_rng, correction_rng, phase)

    @staticmethod
    def _noisy(value, rng: BlockedRNG, sigma: float, bound: torch.Tensor) -> torch.Tensor:
        """Gaussian exploration noise, clipped to +-bound."""
        noise = rng.normal(*value.shape[1:])
        return clip_to_bound(value + sigma * noise, bound)

    def _uniform(self, bound: torch.Tensor) -> torch.Tensor:
        """[K, 1, n] uniform over +-bound (warm-up with `train.warmup_policy = uniform`)."""
        return (2 * self.rng["warmup"].uniform(1, bound.shape[-1]) - 1) * bound

    def _check_finite(self, action_np: np.ndarray) -> None:
        if not np.isfinite(action_np).all():  # free to check: the action is on the host anyway
            self.loss_log.check(self.seeds)  # names the loss that diverged, if one did
            k = int(np.argwhere(~np.isfinite(action_np))[0, 0])
            raise NonFiniteLossError(f"the low-level action of member {k} (seed "
                                     f"{self.seeds[k]}) became NaN or inf at env step {self.step}")

    def _updates(self) -> None:
        cfg, agent, step = self.cfg, self.agent, self.step
        batch_size = cfg.td3.batch_size
        if step % cfg.low.update_every == 0 and len(self.low_buffer) >= batch_size:
            batch = self.low_buffer.sample(batch_size, self.rng["replay_lo"])
            losses = self.graphs("update_low", agent.low.next_phase(), self._update_low, batch,
                                 self.rng["noise_lo"])
            for name, value in losses.items():
                self.loss_log.record(f"low_{name}", value, step)
        if step % cfg.high.update_every == 0 and len(self.high_buffer) >= batch_size:
            batch = self.high_buffer.sample(batch_size, self.rng["replay_hi"])
            losses = self.graphs("update_high", agent.high.next_phase(), self._update_high,
                                 batch, self.rng["noise_hi"], self.rng["correction"])
            for name, value in losses.items():
                self.loss_log.record(f"high_{name}", value, step)

    def _evaluate_and_checkpoint(self, progress: Progress | None) -> None:
        self.loss_log.check(self.seeds)  # before anything is written: keep the last good state
        results = evaluate(self.agent, self.eval_envs, self.seeds, self.cfg, self.device,
                           self.goals)
        now = time.monotonic()
        t0, s0 = self.interval_start
        sps = (self.step - s0) / (now - t0) if self.step > s0 and now > t0 else float("nan")
        wall = self.wall_offset + (now - self.start_time)
        losses = self.loss_log.means()
        for k in range(self.K):
            returns = self.episode_returns[k]
            self.metrics[k].append({
                "step": self.step,
                **{name: float(values[k]) for name, values in results.items()},
                "train_return": float(np.mean(returns)) if returns else float("nan"),
                **losses[k],
                "steps_per_s": sps, "wall_s": wall,
            })
        self.write_run_records()
        if self.tensorboard is not None:
            self.tensorboard.write([m.rows[-1] for m in self.metrics], self.loss_log)
        self.loss_log.reset()
        self.episode_returns = [[] for _ in self.seeds]
        t = self.cfg.train
        if self.step % (t.checkpoint_every or t.eval_every) == 0 or self.step == t.steps:
            save(self.state_dict(), self.state_dir, self.step, t.checkpoints_kept)
        if progress is not None:
            note = (f"eval reward {np.mean(results['eval_reward']):.1f}, success "
                    f"{np.mean(results['eval_success']):.2f}")
            progress.update(self.step, note=note, force=True)
        self.interval_start = (time.monotonic(), self.step)

    def _write_policies(self) -> None:
        """Each seed's policy.pt: that seed's networks only, with its config and step."""
        K = len(self.seeds)
        nets = {"high_actor": self.agent.high.actor, "low_actor": self.agent.low.actor,
                "high_critic": self.agent.high.critic, "low_critic": self.agent.low.critic}
        for k, seed in enumerate(self.seeds):
            own = {name: member_state_dict(net, k, K) for name, net in nets.items()}
            with atomic_path(self.seed_dir(seed) / "policy.pt") as tmp:
                torch.save(with_checksum({"format": POLICY_FORMAT, "config": self.cfg.to_dict(),
                                          "seed": seed, "step": self.step, "nets": own}), tmp)


def train(cfg: RunConfig, out_dir: str | Path, state_dir: str | Path | None = None,
          progress: bool = True) -> Trainer:
    trainer = Trainer(cfg, out_dir, state_dir, progress)
    trainer.run()
    return trainer

