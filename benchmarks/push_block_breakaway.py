"""How hard must one push the Push block to move it? HIRO's size vs hflow's.

    python benchmarks/push_block_breakaway.py

For each block size factor and force, applies a constant +x force to the 0.0002 kg Push block
for 1 s (the ant parked at the start) and prints how far it slid. With HIRO's size (1.0) the
block touches the corners of its three diagonal neighbour walls; MuJoCo >= 3 wedges it between
those edge contacts and the floor. The numbers back the decision in docs/tasks.md.
"""

from __future__ import annotations

import mujoco

from hflow.envs import make
from hflow.envs.checks import ant_push_force

FORCES = (0.1, 0.5, 1, 2, 4, 8, 16)


def main() -> None:
    print(f"ant's largest ground force (mu * m * g): {ant_push_force(make('AntPushSingle')):.2f} N")
    print("displacement (x) after 1 s of a constant push")
    print("size factor | force (N): " + "  ".join(f"{f:>5g}" for f in FORCES))
    for shrink in (1.0, 0.99):
        env = make("AntPushSingle", block_shrink=shrink)
        block = env.model.body(env.task.layout.blocks[0].name).id
        moved = []
        for force in FORCES:
            env.reset(seed=0)
            mujoco.mj_step(env.model, env.data, nstep=50)  # settle
            x0 = env.data.xpos[block][0]
            env.data.xfrc_applied[block, 0] = force
            mujoco.mj_step(env.model, env.data, nstep=50)
            env.data.xfrc_applied[block, 0] = 0
            moved.append(env.data.xpos[block][0] - x0)
        print(f"{shrink:>11g} | {'':>10}" + "  ".join(f"{m:5.2f}" for m in moved))


if __name__ == "__main__":
    main()
