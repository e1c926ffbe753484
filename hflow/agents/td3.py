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

import torch
import torch.nn.functional as F
from torch import nn

from hflow.config import TD3Config
from hflow.nets import TwinCritic
from hflow.optim import Adam
from hflow.seeding import MemberRNG


def member_sum(per_sample: torch.Tensor) -> torch.Tensor:
    """[K, B, ...] -> scalar: mean over everything but the member dim, summed over members."""
    return per_sample.reshape(per_sample.shape[0], -1).mean(dim=1).sum()


def per_member(per_sample: torch.Tensor) -> torch.Tensor:
    return per_sample.detach().reshape(per_sample.shape[0], -1).mean(dim=1)


class TD3(nn.Module):
    def __init__(self, actor: nn.Module, critic: TwinCritic, cfg: TD3Config):
        super().__init__()
        self.actor, self.critic, self.cfg = actor, critic, cfg
        self.actor_target = copy.deepcopy(actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(critic).requires_grad_(False)
        self.actor_params = list(actor.parameters())
        self.critic_params = list(critic.parameters())
        self.actor_opt = Adam(self.actor_params, lr=cfg.actor_lr)
        self.critic_opt = Adam(self.critic_params, lr=cfg.critic_lr)
        self.zero_grads = [torch.zeros_like(p) for p in self.actor_params]
        self.updates = 0  # a host int: reading a device counter would sync every step
        # An actor may add terms to its loss (`act_for_loss(obs) -> (action, terms or None)`:
        # the flow's log-density and pre-squash penalty); any other module is a plain actor.
        self.actor_has_loss_terms = hasattr(actor, "act_for_loss")

    def _apply(self, fn, recurse=True):
        """`.to()`, `.cuda()`, `.double()` ... move the optimizer state too: Adam's moments,
        step counts and the zero gradients live in plain lists that nn.Module does not see."""
        super()._apply(fn, recurse)
        self.actor_params = list(self.actor.parameters())
        self.critic_params = list(self.critic.parameters())
        self.actor_opt.apply(fn, self.actor_params)
        self.critic_opt.apply(fn, self.critic_params)
        self.zero_grads = [fn(t) for t in self.zero_grads]
        return self

    def get_extra_state(self) -> dict:
        return {"updates": self.updates}

    def set_extra_state(self, state: dict) -> None:
        self.updates = state["updates"]

    def update(self, obs, action, reward, next_obs, noise_rng: MemberRNG,
               reward_scale: float = 1.0, discount: torch.Tensor | None = None,
               phase: int | None = None) -> dict[str, torch.Tensor]:
        """One TD3 step on a batch ([K, B, ...] each); `discount` (0 or 1 per transition)
        multiplies gamma where given. Returns per-member losses [K]
        ('actor' only on the steps where the delayed actor update runs).

        `phase` is the update's place in the policy-delay cycle. Left out, this update is
        counted and takes the next phase; given (from `next_phase()`), the step changes no
        host state, so it can run as a captured graph (hflow.graphs)."""
        cfg = self.cfg
        if phase is None:
            phase = self.next_phase()
        with torch.no_grad():
            noise = (noise_rng.normal(*action.shape[1:]) * cfg.target_noise).clamp(
                -cfg.target_noise_clip, cfg.target_noise_clip)
            next_action = self.actor_target(next_obs) + noise
            q_next = self.critic_target(next_obs, next_action).min(dim=0).values
            if discount is not None:  # [K, B, 1]: 0 where the transition ends an episode
                q_next = discount * q_next
            target = reward_scale * reward + cfg.gamma * q_next
        q = self.critic(obs, action)
        td = F.huber_loss(q, target.expand_as(q), reduction="none", delta=cfg.huber_delta)
        critic_loss = td.sum(dim=0)  # Q1 + Q2, per member and sample
        self.critic_opt.step(torch.autograd.grad(member_sum(critic_loss), self.critic_params))

        losses = {"critic": per_member(critic_loss)}
        if phase and cfg.policy_delay_mode == "zero_loss":
            # HIRO: loss * 0 gives zero gradients; the Adam step runs on its moments alone.
            self.actor_opt.step(self.zero_grads)
        elif phase == 0:
            action, extra = self.actor.act_for_loss(obs) if self.actor_has_loss_terms \
                else (self.actor(obs), None)
            actor_loss = -self.critic(obs, action, heads=1)[0]
            if extra is not None:  # e.g. the flow's pre-squash penalty (hflow.agents.flow_actor)
                actor_loss = actor_loss + extra
            # Gradients w.r.t. the actor only: the critic's weights need none from this loss.
            self.actor_opt.step(torch.autograd.grad(member_sum(actor_loss), self.actor_params))
            losses["actor"] = per_member(actor_loss)
            with torch.no_grad():
                for target_net, net in ((self.actor_target, self.actor),
                                        (self.critic_target, self.critic)):
                    torch._foreach_lerp_(list(target_net.parameters()), list(net.parameters()),
                                         cfg.tau)
        return losses

    def next_phase(self) -> int:
        """Counts an update; returns its place in the policy-delay cycle (0: the actor's)."""
        phase = self.updates % self.cfg.policy_delay
        self.updates += 1
        return phase

    def optimizer_state(self) -> dict:
        return {"actor": self.actor_opt.state_dict(), "critic": self.critic_opt.state_dict()}

    def load_optimizer_state(self, state: dict) -> None:
        self.actor_opt.load_state_dict(state["actor"])
        self.critic_opt.load_state_dict(state["critic"])
