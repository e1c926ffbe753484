"""Member-batched networks: one dense layer with weights [K, in, out] for everything."""

from hflow.nets.critic import TwinCritic
from hflow.nets.dense import MemberLinear, MemberMLP, member_state_dict

__all__ = ["MemberLinear", "MemberMLP", "TwinCritic", "member_state_dict"]
