"""Member-batched TD3 (Fujimoto et al. 2018) as HIRO uses it.

Twin critics, target policy smoothing (N(0, 0.2) clipped to +-0.5, in action units, added to
the target action without re-clipping, as HIRO), policy delay 2, Huber TD loss, soft target
updates every `policy_delay` updates. HIRO's delay (`policy_delay_mode='zero_loss'`, its
train.py) multiplies the actor loss by 0 on the off updates but still runs the Adam step, so
the actor keeps moving on Adam's momentum; the TD3 paper's (`'skip'`) skips the step. Every
loss is a mean over the batch and a *sum* over members, so each member's gradients, and
hence its Adam steps, are its own.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hflow.config import TD3Config
from hflow.nets import TwinCritic
from hflow.seeding import MemberRNG


def draw_target_noise(rng: MemberRNG, batch_size: int, action_dim: int) -> torch.Tensor:
    """N(0, 1) per sample and action element, [K, B, a]: TD3's target-policy smoothing noise
    before its scale and clip (critic_step applies both)."""
    return rng.normal(batch_size, action_dim)


def member_sum(per_sample: torch.Tensor) -> torch.Tensor:
    """[K, B, ...] -> scalar: mean over everything but the member dim, summed over members."""
    return per_sample.reshape(per_sample.shape[0], -1).mean(dim=1).sum()


def per_member(per_sample: torch.Tensor) -> torch.Tensor:
    return per_sample.detach().reshape(per_sample.shape[0], -1).mean(dim=1)


class TD3(nn.Module):
    def __init__(self, actor: nn.Module, critic: TwinCritic, cfg: TD3Config,
                 reward_scale: float = 1.0):
        super().__init__()
        self.actor, self.critic, self.cfg, self.reward_scale = actor, critic, cfg, reward_scale
        # batch -> (the actions to learn from, metrics): HIRO's high level relabels its
        # segments' goals for today's low level first (HierarchicalAgent.relabel); None: the
        # stored actions as they are
        self.relabel: Callable[[dict], tuple[torch.Tensor, dict]] | None = None
        self.actor_target = copy.deepcopy(actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(critic).requires_grad_(False)
        # The optimizers are child modules: their moments move, save and load with the TD3.
        self.actor_opt = Adam(actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = Adam(critic.parameters(), lr=cfg.critic_lr)
        self.zero_grads = Buffers((torch.zeros_like(p) for p in actor.parameters()),
                                  persistent=False)  # HIRO's momentum step's gradients
        self.updates = 0  # a host int: reading a device counter would sync every step
        # An actor may add terms to its loss (`act_for_loss(obs) -> (action, terms or None)`:
        # the flow's log-density and pre-squash penalty); any other module is a plain actor.
        self.actor_has_loss_terms = hasattr(actor, "act_for_loss")

    def get_extra_state(self) -> dict:
        return {"updates": self.updates}

    def set_extra_state(self, state: dict) -> None:
        self.updates = state["updates"]

    # -- one update, as two steps that hflow.agents.level runs in turn (each a function of its
    # batch alone, so either can be replayed as a CUDA graph): the critic's, then, per the
    # policy delay, the actor's with the target networks', HIRO's momentum step, or nothing.
    def critic_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """batch: obs, action, reward, next_obs [K, B, ...], the target-policy noise `noise`
        (draw_target_noise) and optionally `discount` (0 or 1 per transition, times gamma);
        with `relabel`, what it reads instead of `action`. Returns the per-member critic loss
        [K] (and what the relabel logs)."""
        cfg, logged = self.cfg, {}
        if self.relabel is not None:
            action, logged = self.relabel(batch)
        else:
            action = batch["action"]
        obs, next_obs = batch["obs"], batch["next_obs"]
        with torch.no_grad():
            noise = (batch["noise"] * cfg.target_noise).clamp(-cfg.target_noise_clip,
                                                              cfg.target_noise_clip)
            next_action = self.actor_target(next_obs) + noise
            q_next = self.critic_target(next_obs, next_action).min(dim=0).values
            if "discount" in batch:  # [K, B, 1]: 0 where the transition ends an episode
                q_next = batch["discount"] * q_next
            target = self.reward_scale * batch["reward"] + cfg.gamma * q_next
        q = self.critic(obs, action)
        td = F.huber_loss(q, target.expand_as(q), reduction="none", delta=cfg.huber_delta)
        critic_loss = td.sum(dim=0)  # Q1 + Q2, per member and sample
        params = list(self.critic.parameters())
        self.critic_opt.step(params, torch.autograd.grad(member_sum(critic_loss), params))
        return {"critic": per_member(critic_loss), **logged}

    def actor_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The delayed step on batch["obs"]: the actor on -Q (plus the actor's own loss
        terms), then the soft target updates. Returns the per-member actor loss [K]."""
        obs = batch["obs"]
        action, extra = self.actor.act_for_loss(obs) if self.actor_has_loss_terms \
            else (self.actor(obs), None)
        actor_loss = -self.critic(obs, action, heads=1)[0]
        if extra is not None:  # e.g. the flow's pre-squash penalty (hflow.agents.flow_actor)
            actor_loss = actor_loss + extra
        # Gradients w.r.t. the actor only: the critic's weights need none from this loss.
        params = list(self.actor.parameters())
        self.actor_opt.step(params, torch.autograd.grad(member_sum(actor_loss), params))
        with torch.no_grad():
            for target_net, net in ((self.actor_target, self.actor),
                                    (self.critic_target, self.critic)):
                torch._foreach_lerp_(list(target_net.parameters()), list(net.parameters()),
                                     self.cfg.tau)
        return {"actor": per_member(actor_loss)}

    def momentum_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """HIRO's off-delay step: its loss * 0 gives zero gradients, and the Adam step runs
        on the moments alone."""
        self.actor_opt.step(list(self.actor.parameters()), self.zero_grads.tensors())
        return {}

    def delayed_step(self) -> Callable[[dict], dict] | None:
        """Counts an update (a host int) and returns what follows its critic step: the actor
        step every `policy_delay` updates, else HIRO's momentum step ('zero_loss') or nothing
        ('skip')."""
        phase = self.updates % self.cfg.policy_delay
        self.updates += 1
        if phase == 0:
            return self.actor_step
        return self.momentum_step if self.cfg.policy_delay_mode == "zero_loss" else None


class Buffers(nn.Module):
    """An ordered list of tensors registered as buffers ('0', '1', ...): they follow `.to()`
    and, when persistent, `state_dict()`, as a module's own tensors do."""

    def __init__(self, tensors, persistent: bool = True):
        super().__init__()
        for i, t in enumerate(tensors):
            self.register_buffer(str(i), t, persistent=persistent)

    def tensors(self) -> list[torch.Tensor]:
        return list(self._buffers.values())


class Adam(nn.Module):
    """Adam as `torch.optim.Adam(fused=True)` computes it (bitwise: tests/test_nets.py), through
    the same fused kernel, with the parameters and gradients passed to each step (no `.grad`
    kept or zeroed). Its moments and step count are buffers of this module, a child of its TD3:
    `.to()`, `state_dict()` and checkpoints carry them with the networks. Why not
    torch.optim.Adam: its per-step Python bookkeeping (parameter groups, state look-ups,
    checks) cost 1.8-2.2x this class's time per step on paper-size networks here
    (benchmarks/adam_overhead.py). `torch._fused_adam_` is private: pyproject pins the torch
    range it was run with."""

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        super().__init__()
        params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = Buffers(torch.zeros_like(p) for p in params)
        self.exp_avg_sq = Buffers(torch.zeros_like(p) for p in params)
        self.register_buffer("step_count", torch.zeros((), dtype=torch.float32,
                                                       device=params[0].device))

    @torch.no_grad()
    def step(self, params: list[torch.Tensor],
             grads: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> None:
        """One Adam step of `params` (the parameters this Adam was built for, in that order)."""
        self.step_count += 1
        torch._fused_adam_(params, list(grads), self.exp_avg.tensors(),
                           self.exp_avg_sq.tensors(), [], [self.step_count] * len(params),
                           lr=self.lr, beta1=self.betas[0], beta2=self.betas[1],
                           weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False)
