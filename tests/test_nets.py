"""The networks: the member-batched dense layer, the twin critic, the conditional RealNVP,
the optimiser and the random streams."""

import numpy as np
import torch

from hflow.nets import MemberLinear, MemberMLP, TwinCritic
from hflow.nets.flow import ConditionalRealNVP, squash, unsquash
from hflow.seeding import MemberRNG


def _random_flow(members=3, dim=8, cond_dim=5):
    flow = ConditionalRealNVP(members, dim, cond_dim, layers=4, hidden=[32, 32],
                              rng=MemberRNG(list(range(members)), "init"), scale_bound=2.0)
    with torch.no_grad():  # away from the near-identity init, so the test means something
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return flow


def test_flow_inverse_of_forward_is_identity():
    torch.manual_seed(0)
    flow = _random_flow()
    x, cond = torch.randn(3, 64, 8), torch.randn(3, 64, 5)
    y, _ = flow(x, cond)
    assert (y - x).abs().max() > 0.1
    assert torch.allclose(flow.inverse(y, cond), x, atol=1e-5)


def test_flow_log_det_matches_autograd_jacobian():
    torch.manual_seed(1)
    flow = _random_flow(members=2, dim=6, cond_dim=3)
    for k in range(2):
        for _ in range(3):
            x, cond = torch.randn(6), torch.randn(3)

            def f(v, k=k, cond=cond):
                full = torch.zeros(2, 1, 6)
                full[k, 0] = v
                c = torch.zeros(2, 1, 3)
                c[k, 0] = cond
                return flow(full, c)[0][k, 0]

            jac = torch.autograd.functional.jacobian(f, x)
            full, c = torch.zeros(2, 1, 6), torch.zeros(2, 1, 3)
            full[k, 0], c[k, 0] = x, cond
            logdet = flow(full, c)[1][k, 0]
            assert torch.allclose(logdet, torch.linalg.slogdet(jac).logabsdet, atol=1e-4)


def test_squash_inverse_is_finite_at_the_bounds():
    high = torch.full((8,), 30.0)
    actions = torch.tensor([[-30.0] * 4 + [30.0] * 4, [-31.0] * 4 + [1e9] * 4])
    y = unsquash(actions, high)
    assert torch.isfinite(y).all()
    inner = torch.linspace(-29, 29, 8)
    assert torch.allclose(squash(unsquash(inner, high), high), inner, atol=1e-4)


def test_member_linear_is_a_batched_matmul_and_slices_members():
    rng = MemberRNG([0, 1, 2], "t")
    layer = MemberLinear(3, 4, 5)
    layer.reset_parameters(rng)
    x = torch.randn(3, 7, 2, 4)
    y = layer(x)
    assert y.shape == (3, 7, 2, 5)
    for k in range(3):
        assert torch.allclose(y[k], x[k] @ layer.weight[k] + layer.bias[k], atol=1e-6)
    assert torch.allclose(layer(x[:2], members=slice(0, 2)), y[:2])


def test_hiro_initialisation():
    rng = MemberRNG([0, 1], "init")
    mlp = MemberMLP(2, [50, 300, 300, 8], rng)
    hidden, final = mlp.layers[0].weight, mlp.layers[-1].weight
    assert hidden.abs().max() <= 1 / np.sqrt(50) and hidden.abs().max() > 0.9 / np.sqrt(50)
    assert final.abs().max() <= 0.003
    assert (mlp.layers[0].bias == 0).all()
    assert not torch.equal(hidden[0], hidden[1])  # members get their own streams


def test_member_weights_depend_on_their_own_seed_only():
    a = MemberMLP(2, [3, 8, 2], MemberRNG([5, 9], "init"))
    b = MemberMLP(1, [3, 8, 2], MemberRNG([9], "init"))
    for la, lb in zip(a.layers, b.layers):
        assert torch.equal(la.weight[1], lb.weight[0])
    twin2 = TwinCritic(2, 3, 1, [8, 8], MemberRNG([5, 9], "init"))
    twin1 = TwinCritic(1, 3, 1, [8, 8], MemberRNG([9], "init"))
    obs, act = torch.randn(1, 4, 3), torch.randn(1, 4, 1)
    q2 = twin2(torch.cat([obs, obs]), torch.cat([act, act]))
    q1 = twin1(obs, act)
    assert torch.allclose(q2[:, 1], q1[:, 0], atol=1e-6)
    assert torch.allclose(twin2(obs.repeat(2, 1, 1), act.repeat(2, 1, 1), heads=1)[0], q2[0])


def test_fused_adam_matches_torch_adam():
    from hflow.agents.td3 import Adam

    gen = torch.Generator().manual_seed(0)
    ours = [torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen)]
    ref = [torch.nn.Parameter(p.clone()) for p in ours]
    mine, torch_adam = Adam(ours, lr=1e-2), torch.optim.Adam(ref, lr=1e-2)
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=gen) for p in ours]
        mine.step(ours, grads)
        for p, g in zip(ref, grads):
            p.grad = g.clone()
        torch_adam.step()
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b.detach(), atol=1e-6)
    # the moments are module state: state_dict and load_state_dict carry them
    restored = Adam([p.clone() for p in ours], lr=1e-2)
    restored.load_state_dict(mine.state_dict())
    assert torch.equal(restored.step_count, mine.step_count) and mine.step_count == 5
    for a, b in zip(restored.exp_avg_sq.tensors(), mine.exp_avg_sq.tensors(), strict=True):
        assert torch.equal(a, b) and a.abs().sum() > 0


def test_first_layer_shared_across_candidates_equals_the_plain_forward():
    mlp = MemberMLP(2, [5, 7, 7, 3], MemberRNG([0, 1], "init"), out_act="tanh")
    gen = torch.Generator().manual_seed(1)
    state, goals = torch.randn(2, 4, 6, 3, generator=gen), torch.randn(2, 4, 9, 6, 2,
                                                                       generator=gen)
    joined = torch.cat([state.unsqueeze(2).expand(2, 4, 9, 6, 3), goals], dim=-1)
    assert torch.allclose(mlp.forward_shared(state, goals), mlp(joined), atol=1e-6)


def test_shared_forward_in_cache_sized_chunks_gives_the_same_numbers(monkeypatch):
    """On the CPU forward_shared takes the batch in chunks that fit in cache: the same
    numbers whatever the chunk (here 1 and 3 of 4 rows, and the whole). Within float32
    rounding, not bit for bit: a chunk is a matmul of another shape, and whether BLAS picks
    the same kernel (and summation order) for it depends on the CPU (bitwise on one AMD
    EPYC, not on an Intel Xeon)."""
    import hflow.nets.dense as dense

    mlp = MemberMLP(2, [5, 7, 7, 3], MemberRNG([0, 1], "init"), out_act="tanh")
    gen = torch.Generator().manual_seed(1)
    state, goals = torch.randn(2, 4, 6, 3, generator=gen), torch.randn(2, 4, 9, 6, 2,
                                                                       generator=gen)
    whole = mlp.forward_shared(state, goals)  # 2 x 54 rows x 7 wide per batch row: one chunk
    with torch.no_grad():  # the correction's case: activations in place
        whole_no_grad = mlp.forward_shared(state, goals)
    for floats, chunks in ((2 * 54 * 7, 4), (3 * 2 * 54 * 7, 2)):
        monkeypatch.setattr(dense, "CPU_CHUNK_FLOATS", floats)
        calls = []
        monkeypatch.setattr(mlp, "_forward_shared", lambda s, v, f=mlp._forward_shared,
                            seen=calls: seen.append(1) or f(s, v))
        assert torch.allclose(mlp.forward_shared(state, goals), whole, rtol=1e-5, atol=1e-6)
        with torch.no_grad():
            assert torch.allclose(mlp.forward_shared(state, goals), whole_no_grad, rtol=1e-5,
                                  atol=1e-6)
        assert len(calls) == 2 * chunks
        monkeypatch.undo()


def test_blocked_rng_resumes_mid_block_and_keeps_members_independent():
    from hflow.seeding import BlockedRNG

    a = BlockedRNG([3, 4], "s", block=4)
    first = [a.normal(2) for _ in range(6)]  # one block and a half
    b = BlockedRNG([3, 4], "s", block=4)
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(a.normal(2), b.normal(2)) for _ in range(7))
    alone = BlockedRNG([4], "s", block=4)  # member 1 of the pair, drawn on its own
    assert all(torch.equal(alone.normal(2)[0], x[1]) for x in first)


def test_flow_actor_log_density_is_that_of_the_executed_action():
    """L_rnvp's log-density term (flow.log_density_weight) is log p(a | cond) for a goal
    x ~ N(0, I) in flow units, through flow and squash: checked against an autograd Jacobian
    of the whole map x -> a; the pre-squash penalty is mean(y^2)."""
    from hflow.agents.flow_actor import FlowActor
    from hflow.config import FlowConfig

    torch.manual_seed(2)
    bound, subgoal = torch.tensor([1.0, 0.25]), torch.tensor([10.0, 10.0])
    actor = FlowActor(1, 3, 2, 2, bound, subgoal, [8], FlowConfig(
        condition="state", hidden=[8], log_density_weight=1.0), MemberRNG([0], "init"))
    with torch.no_grad():
        for p in actor.parameters():
            p.add_(0.5 * torch.randn_like(p))
    s, g = torch.randn(3), torch.randn(2) * 5

    def action_of(x):
        return actor(torch.cat([s, x * subgoal]).view(1, 1, 5))[0, 0]

    x = g / subgoal
    jac = torch.autograd.functional.jacobian(action_of, x)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum() - \
        torch.linalg.slogdet(jac).logabsdet
    obs = torch.cat([s, g]).view(1, 1, 5)
    _, log_p = actor.act_for_loss(obs)
    assert torch.allclose(log_p[0, 0, 0], expected, atol=1e-4)

    actor.log_density_weight, actor.presquash_penalty = 0.0, 0.5
    y = actor.act(obs)[1]["fdgm_output"]
    assert torch.allclose(actor.act_for_loss(obs)[1], 0.5 * y.square().mean(-1, keepdim=True))
    actor.presquash_penalty = 0.0
    assert actor.act_for_loss(obs)[1] is None  # neither term: the plain TD3 actor loss
