"""The training loop: K seeds of one configuration in lockstep, HIRO's two-level schedule.

Per env step (`Trainer.advance`): the low level acts, the K envs step, the next goal is
carried by h(s, g, s') or, at a segment's end, picked anew by the high level, the low-level
transition is stored, a finished c-step segment goes to the high-level buffer, then the low
level updates (every step) and the high level (every 10 steps) once the warm-up is over.
Acting and the updates go through `self.graphs`, which on CUDA replays them as captured
graphs (hflow.graphs). The schedule around the loop (resume, evaluate, checkpoint) and the
files are hflow.run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np
import torch

from hflow import HflowError
from hflow.agents.hiro import HierarchicalAgent, draw_exploration
from hflow.agents.level import make_levels
from hflow.config import RunConfig, get_key
from hflow.envs import get_task, goal_space
from hflow.envs.batch import EnvBatch, task_env
from hflow.graphs import StepGraphs
from hflow.loss_log import LossLog
from hflow.metrics import NonFiniteLossError
from hflow.replay import ReplayBuffer
from hflow.seeding import BlockedRNG, stream_seed


def _memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[1]
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _mlp_weights(sizes: list[int]) -> int:
    return sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))


# Each network weight is held five times (itself, its target copy, its gradient, Adam's two
# moments); a MuJoCo env with its model and data takes under 1 MiB (an Ant Maze eval env:
# 0.64 MiB of resident memory, measured over 200 of them).
COPIES_PER_WEIGHT = 5
ENV_BYTES = 2**20


def check_sizes(cfg: RunConfig, members: int, obs: int, hi: int, lo: int, actions: int,
                targets: int, device: torch.device) -> None:
    """What scales with a config key, estimated before anything is allocated: the networks,
    HIRO's candidate scoring, the evaluation envs, the thread counts. Too much is an error
    naming the key, not an allocator traceback after the first checkpoint (the replay
    buffers: `check_replay_fits`)."""
    cores = os.cpu_count() or 1
    for key in ("train.torch_threads", "train.env_threads"):
        threads = get_key(cfg, key)
        if threads > 4 * cores:
            raise HflowError(f"'{key}' = {threads:,} but this machine has {cores} cores (more "
                             f"than 4 threads a core only slow a run down); use at most {cores}")
    low_hidden = [*cfg.low.actor, *(cfg.flow.hidden if cfg.low.policy == "flow" else [])]
    weights = {
        "high.actor": _mlp_weights([obs + hi, *cfg.high.actor, lo]),
        "high.critic": 2 * _mlp_weights([obs + hi + lo, *cfg.high.critic, 1]),
        # a flow low level has two MLPs of these widths (forward, conditional part) besides
        # its flow; HIRO's has one
        "low.actor": (2 if cfg.low.policy == "flow" else 1)
        * _mlp_weights([obs + lo, *cfg.low.actor, actions]),
        "low.critic": 2 * _mlp_weights([obs + lo + actions, *cfg.low.critic, 1]),
        "flow.hidden": (cfg.flow.coupling_layers * _mlp_weights(
            [actions + max(cfg.flow.z_state_dim, obs), *cfg.flow.hidden, 2 * actions])
            if cfg.low.policy == "flow" else 0),
    }
    need = {(key,): members * n * 4 * COPIES_PER_WEIGHT for key, n in weights.items()}
    if cfg.hierarchy.correction == "hiro":  # [K, B, candidates, c, width] per layer
        need[("hierarchy.hiro_candidates", "low.actor")] = (
            members * cfg.td3.batch_size * (cfg.hierarchy.hiro_candidates + 2)
            * cfg.hierarchy.c * max(low_hidden, default=actions) * 4 * 3)
    need[("train.eval_episodes",)] = members * targets * cfg.train.eval_episodes * ENV_BYTES
    have = _memory(device)
    if sum(need.values()) > have:
        keys = max(need, key=need.get)
        named = " with ".join(f"'{key}' = {get_key(cfg, key)}" for key in keys)
        raise HflowError(f"this run needs about {sum(need.values()) / 2**30:,.1f} GiB before "
                         f"its replay buffers, most of it for {named} "
                         f"({need[keys] / 2**30:,.1f} GiB for {members} seeds), but this "
                         f"{device.type} has {have / 2**30:,.1f} GiB; lower it")


def check_replay_fits(members: int, cfg: RunConfig, low: dict, high: dict,
                      device: torch.device) -> None:
    """Both replay buffers are allocated whole at the start: a size that cannot fit in the
    device's memory is an error naming the keys, not an allocation failure (or a swap storm)."""
    need = sum(members * size * sum(math.prod(shape) for shape in fields.values()) * 4
               for size, fields in ((cfg.low.buffer_size, low), (cfg.high.buffer_size, high)))
    have = _memory(device)
    if need > have:
        raise HflowError(f"the replay buffers need {need / 2**30:,.1f} GiB "
                         f"(low.buffer_size = {cfg.low.buffer_size:,}, high.buffer_size = "
                         f"{cfg.high.buffer_size:,}, {members} seeds) but this {device.type} "
                         f"has {have / 2**30:,.1f} GiB; use smaller buffers or fewer seeds per "
                         f"job")


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


class Segment:
    """The c-step segment being collected; at its end, the high level's transition: the
    states s_t..s_t+c, the low level's actions and extras (for the relabelling), the goal it
    held at t, the summed reward, and the high level's TD3 input (obs, next_obs)."""

    def __init__(self, state: torch.Tensor, goal: torch.Tensor):
        self.states, self.actions, self.goal = [state], [], goal
        self.extras: dict[str, list[torch.Tensor]] = {}
        self.reward = np.zeros(state.shape[0])

    def add(self, next_state, action, extras: dict, reward: np.ndarray) -> None:
        self.states.append(next_state)
        self.actions.append(action)
        for name, value in extras.items():
            self.extras.setdefault(name, []).append(value)
        self.reward += reward

    def transition(self, agent: HierarchicalAgent, target: torch.Tensor, terminal: bool,
                   to_device: Callable[[np.ndarray], torch.Tensor]) -> dict[str, torch.Tensor]:
        """One high-level replay item per member; `terminal`: the segment ends an episode
        and the high level does not bootstrap from it (HIRO)."""
        return {
            "obs": agent.high_input(self.states[0], target)[:, 0],
            "next_obs": agent.high_input(self.states[-1], target)[:, 0],
            "states": torch.stack(self.states, dim=2)[:, 0],
            "actions": torch.stack(self.actions, dim=2)[:, 0],
            "goal": self.goal[:, 0], "target": target[:, 0],
            "reward": to_device(self.reward)[:, None],
            "discount": torch.full((len(self.reward), 1), 0.0 if terminal else 1.0,
                                   device=target.device),
            **{k: torch.stack(v, dim=2)[:, 0] for k, v in self.extras.items()},
        }


class LowLevelTally:
    """The low level's own task since the last metrics row, per member, summed on the device
    (no sync per step): its intrinsic reward per env step, and per c-step segment the distance
    to the subgoal at the start (|g_t|: subgoals are relative) and at the end (|h(...)| after
    the c-th step), over all the subgoal's elements and over its x, y alone. Rows:
    hflow.metrics.LOW_LEVEL_METRICS."""

    def __init__(self, members: int, device: torch.device, reached_within: float):
        self.reached_within = reached_within
        # reward; start, end, reached; start and end over x, y
        self.sums = torch.zeros(6, members, device=device)
        self.start = torch.zeros(2, members, device=device)
        self.steps = self.segments = 0

    @staticmethod
    def _distances(goal: torch.Tensor) -> torch.Tensor:
        """goal [K, 1, lo] -> [2, K]: its size, and the size of its x, y part."""
        return torch.stack([torch.linalg.vector_norm(goal[:, 0], dim=-1),
                            torch.linalg.vector_norm(goal[:, 0, :2], dim=-1)])

    def begin_segment(self, goal: torch.Tensor) -> None:
        """goal [K, 1, lo]: the subgoal the segment starts with."""
        self.start = self._distances(goal)

    def add_step(self, intrinsic_reward: torch.Tensor) -> None:
        self.sums[0] += intrinsic_reward[:, 0, 0]
        self.steps += 1

    def end_segment(self, goal_left: torch.Tensor) -> None:
        """goal_left [K, 1, lo]: what remains of the subgoal after the segment's last step,
        h(s, g, s') (its size is minus that step's intrinsic reward)."""
        end, end_xy = self._distances(goal_left)
        self.sums[1:] += torch.stack([self.start[0], end, (end < self.reached_within).float(),
                                      self.start[1], end_xy])
        self.segments += 1

    def take(self) -> list[dict[str, float]]:
        """Per member, the metrics since the last call (NaN before any step), then reset."""
        reward, start, end, reached, start_xy, end_xy = self.sums.double().cpu().numpy()
        nan = np.full_like(reward, math.nan)
        rows = {"low_intrinsic_reward": reward / self.steps if self.steps else nan,
                "low_subgoal_distance_left": end / start if self.segments else nan,
                "low_subgoal_reached": reached / self.segments if self.segments else nan,
                "low_subgoal_xy_progress": (start_xy - end_xy) / self.segments
                if self.segments else nan}
        self.sums.zero_()
        self.steps = self.segments = 0
        return [{name: float(v[k]) for name, v in rows.items()} for k in range(len(reward))]


class Trainer:
    """K seeds of one configuration in lockstep: the loop (`advance`: act, step, store,
    learn) and its state (`state_dict`)."""

    def __init__(self, cfg: RunConfig):
        self.cfg, self.seeds, self.K = cfg, list(cfg.train.seeds), len(cfg.train.seeds)
        self.device = resolve_device(cfg.train.device)
        torch.set_num_threads(cfg.train.torch_threads)
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True)
        self.task = get_task(cfg.task.name)
        self.goals = goal_space(self.task, cfg.task.hi, cfg.task.lo, cfg.task.eval_target)

        check_sizes(cfg, self.K, self.task.obs_dim, self.goals.hi, self.goals.lo,
                    self.task.robot.nu, len(self.goals.eval_targets), self.device)
        self.agent = HierarchicalAgent(cfg, self.task, self.goals, self.seeds).to(self.device)
        # acting and the updates: eager, or recorded once and replayed as CUDA graphs
        self.graphs = StepGraphs(capture_mode(cfg.train.capture, self.device),
                                 self.device, self.agent.mutable_tensors)
        low, high = self.agent.replay_fields()
        check_replay_fits(self.K, cfg, low, high, self.device)
        self.low_buffer = ReplayBuffer(self.K, cfg.low.buffer_size, low, self.device)
        self.high_buffer = ReplayBuffer(self.K, cfg.high.buffer_size, high, self.device)
        # One stream per consumer, drawn in blocks (one generator call per member per block).
        # A stream's name seeds it: '_lo' / '_hi' (the low / high level) stay as first
        # spelled, or every run's numbers would change.
        self.rng = {name: BlockedRNG(self.seeds, name, self.device)
                    for name in ("replay_lo", "replay_hi", "noise_lo", "noise_hi", "correction",
                                 "explore_lo", "explore_hi", "warmup")}
        self.levels = make_levels(self.agent, self.low_buffer, self.high_buffer, self.rng, cfg)
        self.envs = EnvBatch([[task_env(cfg.task, "train")] for _ in self.seeds],
                             cfg.train.env_threads)
        self.loss_log = LossLog(self.K, self.device)
        self.low_tally = LowLevelTally(self.K, self.device, cfg.low.subgoal_reached_within)
        # the loop's state: set by each episode's start (`_begin_episode`) and segment
        self.step = 0
        self.state = self.goal = self.target = torch.empty(0)
        self.segment = Segment(self.state, self.goal)
        self.episode_return = np.zeros(self.K)
        self.episode_returns: list[list[float]] = [[] for _ in self.seeds]

    def take_episode_returns(self) -> list[list[float]]:
        """The returns of the episodes finished since the last call, per member."""
        returns, self.episode_returns = self.episode_returns, [[] for _ in self.seeds]
        return returns

    def state_dict(self) -> dict:
        """The loop's state; a checkpoint adds the run's identity and metrics (hflow.run)."""
        return {
            "step": self.step,
            "agent": self.agent.state_dict(),  # the optimizers' moments included
            "replay": {"low": self.low_buffer.state_dict(), "high": self.high_buffer.state_dict()},
            "rng": {k: v.state_dict() for k, v in self.rng.items()},
            "env_rng": self.envs.rng_states(),
            "losses": self.loss_log.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.agent.load_state_dict(state["agent"])
        self.low_buffer.load_state_dict(state["replay"]["low"])
        self.high_buffer.load_state_dict(state["replay"]["high"])
        for k, v in self.rng.items():
            v.load_state_dict(state["rng"][k])
        self.envs.load_rng_states(state["env_rng"])
        self.loss_log.load_state_dict(state["losses"])
        self.step = state["step"]

    # -- the loop --------------------------------------------------------------------------------
    def advance(self) -> None:
        """One env step of all members, top to bottom, with the updates that follow it."""
        cfg, t = self.cfg, self.step
        c, T = cfg.hierarchy.c, cfg.task.episode_steps
        # -- episode start: reset the envs; the high level picks the first goal
        if t % T == 0:
            self._begin_episode()
        if t % c == 0:
            self.segment = Segment(self.state, self.goal)
            self.low_tally.begin_segment(self.goal)

        # -- the low level acts, then the envs step
        action, extras = self._act_low()
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
        intrinsic = self.agent.intrinsic_reward(carried)
        self.low_tally.add_step(intrinsic)
        self.low_buffer.add(
            obs=self.agent.low_input(self.state, self.goal)[:, 0], action=action[:, 0],
            reward=intrinsic[:, 0],
            next_obs=self.agent.low_input(next_state, stored_next_goal)[:, 0])
        self.segment.add(next_state, action, extras, reward[:, 0])
        self.episode_return += reward[:, 0]
        if segment_end:
            self.low_tally.end_segment(carried)
            terminal = episode_end and cfg.hierarchy.high_episode_end == "terminal"
            self.high_buffer.add(**self.segment.transition(self.agent, self.target, terminal,
                                                            self._tensor))
        if episode_end:
            for k in range(self.K):
                self.episode_returns[k].append(float(self.episode_return[k]))
        self.state = next_state
        self.goal = new_goal if new_goal is not None else carried

        # -- learn, once the warm-up is over: each level due samples its replay, draws its
        # noise and runs its critic step, then the step its policy delay asks for
        self.step += 1
        if self.step < cfg.train.warmup:
            return
        for level in self.levels:  # the low level first, then the high
            if level.due(self.step):
                metrics = level.update(self.graphs.runner)
                self.loss_log.record_update(level.name, metrics, self.step)

    def _act_low(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The low level's action at the current state and goal, with exploration noise and
        clipped to the action bounds, and what the segment stores of it (`extras`)."""
        if self.step < self.cfg.train.warmup and self.cfg.train.warmup_policy == "uniform":
            # uniform warm-up: the policy still gives the extras the segment stores
            extras = self.agent.act_low(self.state, self.goal)[1]
            return self._uniform(self.agent.action_bound), extras
        noise = draw_exploration(self.rng["explore_lo"], self.agent.action_dim)
        extras = self.graphs("act_low", self.agent.explore_low,
                             {"state": self.state, "goal": self.goal, "noise": noise})
        return extras.pop("action"), extras

    def _begin_episode(self) -> None:
        seeds = None
        if self.step == 0:  # later resets continue each env's own generator
            seeds = np.array([[stream_seed(s, "env") % 2**32] for s in self.seeds])
        obs, target = self.envs.reset(seeds)
        self.state = self._tensor(obs)
        self.target = self._tensor(target)
        self.episode_return = np.zeros(self.K)
        self.goal = self._pick_goal(self.state, self.step)

    def _pick_goal(self, state: torch.Tensor, step: int) -> torch.Tensor:
        """The high level's goal for the segment starting at `step`, with exploration noise."""
        if step < self.cfg.train.warmup and self.cfg.train.warmup_policy == "uniform":
            return self._uniform(self.agent.subgoal_bound)
        noise = draw_exploration(self.rng["explore_hi"], self.agent.lo_dim)
        return self.graphs("act_high", self.agent.explore_high,
                           {"state": state, "target": self.target, "noise": noise})["goal"]

    def _uniform(self, bound: torch.Tensor) -> torch.Tensor:
        """[K, 1, n] uniform over +-bound (warm-up with `train.warmup_policy = uniform`)."""
        return (2 * self.rng["warmup"].uniform(1, bound.shape[-1]) - 1) * bound

    def _check_finite(self, action_np: np.ndarray) -> None:
        if not np.isfinite(action_np).all():  # free to check: the action is on the host anyway
            self.loss_log.check(self.seeds)  # names the loss that diverged, if one did
            k = int(np.argwhere(~np.isfinite(action_np))[0, 0])
            raise NonFiniteLossError(f"the low-level action of member {k} (seed "
                                     f"{self.seeds[k]}) became NaN or inf at env step {self.step}")

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        if self.device.type != "cuda":
            return torch.as_tensor(x, dtype=torch.float32)
        # From pinned memory without waiting: a pageable copy would sync the host every step
        # (the action's copy back is the step's one sync).
        host = torch.from_numpy(np.asarray(x, dtype=np.float32)).pin_memory()
        return host.to(self.device, non_blocking=True)

