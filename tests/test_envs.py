import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import hflow.envs
from hflow.cli import main
from hflow.envs import TASKS, MazeEnv, TaskError, goal_space
from hflow.envs.checks import CHECKS
from hflow.envs.maze import LAYOUTS, Layout, LayoutError, build_mjcf
from hflow.envs.robots import ROBOTS


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_physics_check(check):
    result = check()
    assert result.passed, f"{result.name}: {result.detail}"


@pytest.mark.parametrize("task", list(TASKS))
def test_gymnasium_env_checker(task):
    env = gym.make(f"hflow/{task}-v0")
    with pytest.warns(UserWarning):  # gymnasium's advice about unbounded/unnormalised boxes
        check_env(env.unwrapped, skip_render_check=True)


def test_ant_observation_and_episode():
    env = MazeEnv("AntPushSingle")
    obs, info = env.reset(seed=0)
    assert obs.shape == (30,) and env.action_space.shape == (8,)
    assert obs[-1] == 0.0 and set(info) == {"target", "distance", "is_success"}
    for t in range(1, 501):
        obs, reward, terminated, truncated, info = env.step(np.zeros(8))
        assert not terminated
        assert truncated == (t == 500)
        assert reward == pytest.approx(-np.linalg.norm(obs[:2] - np.array([0.0, 19.0])))
        assert reward == -info["distance"]
    assert obs[-1] == pytest.approx(0.5)


def test_multi_targets_are_sampled_in_range_and_eval_is_fixed():
    train = MazeEnv("AntFallMulti", hi=8)
    g = train.goals
    targets = np.array([train.reset(seed=s)[1]["target"] for s in range(50)])
    assert targets.shape == (50, 8)
    assert (targets >= np.array(g.target_low)).all() and (targets <= np.array(g.target_high)).all()
    assert targets.std(axis=0).min() > 0
    evaluation = MazeEnv("AntFallMulti", hi=8, mode="eval")
    for s in range(3):
        assert np.array_equal(evaluation.reset(seed=s)[1]["target"], g.eval_target)
    single = MazeEnv("AntPushSingle", hi=4)
    assert np.array_equal(single.reset(seed=1)[1]["target"], (0, 19, 0.62, 1))


def test_reward_uses_all_target_dims():
    env = MazeEnv("AntPushSingle", hi=3)
    obs, info = env.reset(seed=0)
    expected = np.linalg.norm(obs[:3] - np.array([0, 19, 0.62]))
    assert info["distance"] == pytest.approx(expected)


def test_goal_space_lo8_keeps_first_tuple_elements():
    g = goal_space("AntPushSingle", 2, 8)
    assert g.subgoal_names == ("x", "y", "z", "qw", "qx", "qy", "qz", "hip_1")
    assert g.subgoal_bound == (10, 10, 0.5, 1, 1, 1, 1, 0.5)
    fall2 = goal_space("AntFallSingle", 2, 15)
    assert fall2.eval_target == (0, 27) and fall2.target_indices == (0, 1)


def test_eval_target_override():
    env = MazeEnv("PointMazeSingle", eval_target=(8, 0))
    assert tuple(env.reset(seed=0)[1]["target"]) == (8, 0)
    with pytest.raises(TaskError, match=r"eval_target \[8, 0, 1\] has 3 values.*needs 2"):
        goal_space("PointMazeSingle", eval_target=(8, 0, 1))


def test_unknown_task_lists_valid_ids():
    with pytest.raises(TaskError, match="AntPushSingle.*BallFallMulti") as err:
        MazeEnv("AntPushSingel")
    assert "did you mean AntPushSingle" in str(err.value)


@pytest.mark.parametrize("hi,lo,bad", [(1, 15, "hi=1"), (16, 15, "hi=16"), (2, 16, "lo=16"),
                                       (2, 1, "lo=1")])
def test_goal_dims_out_of_range(hi, lo, bad):
    with pytest.raises(TaskError, match=rf"{bad} is out of range .*allowed 2\.\.15"):
        goal_space("AntPushSingle", hi, lo)


def test_point_goal_range_is_its_own():
    with pytest.raises(TaskError, match=r"allowed 2\.\.3"):
        goal_space("PointMazeSingle", 4, 3)


def test_point_maze_is_hiros():
    """point_maze.gin: subgoal range +-10, training targets in ((-2, -2), (10, 10)),
    evaluation at (8, 0), (8, 8), (0, 8) with (0, 8) the headline; subgoal x, y by default
    (hiro_xy.gin), the orientation too with lo = 3."""
    g = goal_space("PointMazeMulti")
    assert g.subgoal_names == ("x", "y") and g.subgoal_bound == (10, 10)
    assert goal_space("PointMazeMulti", lo=3).subgoal_names == ("x", "y", "ori")
    assert (g.target_low, g.target_high) == ((-2, -2), (10, 10))
    assert g.eval_targets == ((8, 0), (8, 8), (0, 8)) and g.eval_target == (0, 8)
    env = MazeEnv("PointMazeMulti")
    assert env.model.opt.timestep == 0.02 and env.frame_skip == 1
    assert [env.model.actuator_gear[i, 0] for i in range(env.model.nu)] == [1, 1]
    obs, _ = env.reset(seed=3)
    ctrl_before = env.data.ctrl.copy()
    env.step(np.array([1.0, 0.25]))
    assert (env.data.ctrl == ctrl_before).all()  # the motors only declare the bounds


def test_point_step_is_clipped_to_its_bounds():
    env = MazeEnv("PointMazeSingle")
    env.reset(seed=0)
    heading = env.data.qpos[2]
    env.step(np.array([0.0, 3.0]))  # a turn beyond 0.25 turns by 0.25
    assert env.data.qpos[2] == pytest.approx(heading + 0.25, abs=0.02 * 0.5)


@pytest.mark.parametrize("manual,passes", [(True, False), (False, True)])
def test_point_walls_need_manual_collision(manual, passes):
    """HIRO's manual_collision undoes a step into a wall; with contacts only, the point's
    0.2-per-step teleport goes through the wall (the reason the option is on by default)."""
    env = MazeEnv("PointMazeSingle", manual_collision=manual)
    env.reset(seed=0)
    env.data.qpos[2] = -np.pi / 2  # heading -y, towards the wall at y = -4
    lowest = min(env.step(np.array([1.0, 0.0]))[0][1] for _ in range(100))
    assert (lowest < -6) == passes, lowest


def test_point_cannot_do_push_or_fall():
    with pytest.raises(TaskError, match="kinematic.*BallPushSingle"):
        MazeEnv("PointPushSingle")
    with pytest.raises(TaskError, match="BallFallMulti"):
        goal_space("PointFallMulti")


@pytest.mark.parametrize("grid,message", [
    ([[1, 1, 1], [1, "q", 1], [1, 1, 1]], r"cell \(row 1, col 1\) is 'q'"),
    ([[1, 1, 1], [1, 0, 1], [1, 1, 1]], "exactly one robot cell"),
    ([[1, 1, 1], [1, "r", 1, 1], [1, 1, 1]], "row 1 has 4 cells"),
    ([[1, 0, 1], [1, "r", 1], [1, 1, 1]], r"cell \(row 0, col 1\) is on the border"),
])
def test_malformed_layout_names_the_cell(grid, message):
    with pytest.raises(LayoutError, match=message):
        Layout.parse(grid)


def test_mjcf_builds_for_every_layout_and_robot():
    import mujoco

    block_joints = {"maze": 0, "push": 2, "fall": 2}  # XY and YZ blocks: one slide per axis
    for name, grid in LAYOUTS.items():
        for robot in ROBOTS.values():
            model = mujoco.MjModel.from_xml_string(build_mjcf(Layout.parse(grid), robot))
            assert model.nu == robot.nu
            assert model.nq == robot.nq + block_joints[name]


def test_registered_ids_make_envs():
    assert len([i for i in gym.registry if i.startswith("hflow/")]) == 12
    env = gym.make("hflow/PointMazeMulti-v0", hi=3)
    assert env.unwrapped.goals.hi == 3
    assert hflow.envs.env_id("AntFallMulti") == "hflow/AntFallMulti-v0"


def test_cli_lists_renders_and_reports_errors(tmp_path, capsys):
    assert main(["envs"]) == 0
    assert "AntFallMulti" in capsys.readouterr().out
    out = tmp_path / "push.png"
    assert main(["envs", "render", "AntPushSingle", "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert main(["envs", "render", "NoSuchTask", "-o", str(out)]) == 2
    assert "valid tasks" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["AntPushSingle", "AntFallSingle", "PointMazeSingle"])
def test_batched_stepping_is_each_env_stepped_alone(task):
    """EnvBatch (K envs on a thread pool) gives bit for bit what each env stepped alone gives:
    1,000 steps of the same actions, an episode boundary included, compared in observation,
    reward, distance, success and MuJoCo's full physics state. The guard for any faster
    stepping (a native thread pool, batched observations)."""
    import mujoco

    from hflow.envs import make
    from hflow.envs.batch import EnvBatch

    k, steps, episode = 3, 1000, 500
    batch = EnvBatch([[make(task)] for _ in range(k)], threads=2)
    alone = [make(task) for _ in range(k)]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    size = mujoco.mj_stateSize(alone[0].model, spec)
    rng = np.random.default_rng(0)
    high = alone[0].action_space.high

    def state(env):
        out = np.empty(size)
        mujoco.mj_getState(env.model, env.data, out, spec)
        return out

    for t in range(steps):
        if t % episode == 0:
            seeds = np.arange(k)[:, None] + 10 * t
            obs, target = batch.reset(seeds)
            for i, env in enumerate(alone):
                o, info = env.reset(seed=int(seeds[i, 0]))
                assert np.array_equal(obs[i, 0], o) and np.array_equal(target[i, 0],
                                                                       info["target"])
        action = rng.uniform(-high, high, (k, 1, len(high))).astype(np.float32)
        obs, reward, distance, success = batch.step(action)
        for i, env in enumerate(alone):
            o, r, _, _, info = env.step(action[i, 0])
            assert np.array_equal(obs[i, 0], o), (t, i)
            assert reward[i, 0] == r and distance[i, 0] == info["distance"], (t, i)
            assert success[i, 0] == info["is_success"], (t, i)
            assert np.array_equal(state(batch.envs[i][0]), state(env)), (t, i)
