"""The robots of the maze tasks, written as MJCF builders.

`ant` follows HIRO's `ant.xml` (efficient-hrl): RK4 at 0.02 s, 8 hinge motors with
ctrlrange +-30 and gear 1, joint armature 1 and damping 1, density 5.
`point` is HIRO's point (`point.xml`, `point.py`): kinematic. Each step turns it by action[1]
and moves it 0.2 * action[0] along its heading by setting qpos (x, y, orientation), then runs
one physics step in which walls push it back; its two motors only declare the action bounds
(+-1, +-0.25) and never act. It has no z joint, so it can neither push a block far nor fall:
`ball` is hflow's own robot for Push and Fall at the point's scale, a 0.1 kg sphere on x/y/z
slide joints driven by x/y force motors, so walls, blocks and chasms act on it through the
same physics as on the ant. Its mass stays within 100x of the 0.001 kg Fall block: at 1 kg
the soft contacts let it press the block 0.25 into the floor.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass


def fmt(*values: float) -> str:
    return " ".join(f"{v:g}" for v in values)


@dataclass(frozen=True)
class Robot:
    name: str
    maze_scale: float  # S: the side of one maze cell
    nq: int  # the robot's qpos size: the low-level (subgoal) tuple is qpos[:lo]
    nv: int  # the robot's qvel size
    nu: int  # number of motors (the action size)
    action_bound: tuple[float, ...]  # per action element: actions lie in [-bound, bound]
    # Half-range of every element of the low-level tuple (HIRO's CONTEXT_RANGE for the ant).
    subgoal_bound: tuple[float, ...]
    # qpos[2:nq] of the robot standing upright: the eval target of target dims beyond the
    # task's own (docs/tasks.md, goal spaces); z is relative to the ground it stands on.
    upright: tuple[float, ...]
    start_height: float  # torso z at the start, above the ground it stands on
    # <default><geom .../> of the robot's model file; the maze geoms inherit it, as in HIRO.
    geom_default: tuple[tuple[str, str], ...]
    frame_skip: int = 5
    timestep: float = 0.02
    # "motors": the action is the motors' control; "kinematic": HIRO's point, moved by qpos.
    drive: str = "motors"
    # The default subgoal size (task.lo): the ant's whole qpos (HIRO's hiro_orig.gin), the
    # point's x, y (hiro_xy.gin: the only HIRO subgoal config that fits its 7-dim observation).
    default_lo: int | None = None
    zero_xy: bool = True  # the low level's x, y zeroed (ZERO_OBS of that same HIRO config)

    @property
    def lo(self) -> int:
        return self.nq if self.default_lo is None else self.default_lo

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the low-level tuple's elements (qpos order)."""
        return _TUPLE_NAMES[self.name][: self.nq]

    def build(self, worldbody: ET.Element, root: ET.Element, base_z: float) -> None:
        _BUILDERS[self.name](self, worldbody, root, base_z)


_ANT_LEGS = (
    # name, direction of the leg in the x-y plane, ankle axis, ankle range (degrees)
    ("1", (1, 1), (-1, 1, 0), (30, 70)),
    ("2", (-1, 1), (1, 1, 0), (-70, -30)),
    ("3", (-1, -1), (-1, 1, 0), (-70, -30)),
    ("4", (1, -1), (1, 1, 0), (30, 70)),
)
# HIRO's actuator order (the same as gym's Ant).
_ANT_MOTORS = ("hip_4", "ankle_4", "hip_1", "ankle_1", "hip_2", "ankle_2", "hip_3", "ankle_3")

_TUPLE_NAMES = {
    "ant": ("x", "y", "z", "qw", "qx", "qy", "qz",
            "hip_1", "ankle_1", "hip_2", "ankle_2", "hip_3", "ankle_3", "hip_4", "ankle_4"),
    "point": ("x", "y", "ori"),
    "ball": ("x", "y", "z"),
}


def _build_ant(robot: Robot, worldbody: ET.Element, root: ET.Element, base_z: float) -> None:
    default = root.find("default")
    ET.SubElement(default, "joint", limited="true", armature="1", damping="1")
    z0 = base_z + robot.start_height
    torso = ET.SubElement(worldbody, "body", name="torso", pos=fmt(0, 0, z0))
    ET.SubElement(torso, "geom", name="torso_geom", type="sphere", size="0.25", pos="0 0 0")
    ET.SubElement(torso, "joint", name="root", type="free", limited="false", pos="0 0 0",
                  margin="0.01", armature="0", damping="0")
    for leg, (dx, dy), ankle_axis, ankle_range in _ANT_LEGS:
        hip_body = ET.SubElement(torso, "body", name=f"leg_{leg}", pos="0 0 0")
        ET.SubElement(hip_body, "geom", name=f"aux_{leg}_geom", type="capsule", size="0.08",
                      fromto=fmt(0, 0, 0, 0.2 * dx, 0.2 * dy, 0))
        thigh = ET.SubElement(hip_body, "body", name=f"aux_{leg}", pos=fmt(0.2 * dx, 0.2 * dy, 0))
        ET.SubElement(thigh, "joint", name=f"hip_{leg}", type="hinge", pos="0 0 0",
                      axis="0 0 1", range="-30 30")
        ET.SubElement(thigh, "geom", name=f"leg_{leg}_geom", type="capsule", size="0.08",
                      fromto=fmt(0, 0, 0, 0.2 * dx, 0.2 * dy, 0))
        shin = ET.SubElement(thigh, "body", name=f"shin_{leg}", pos=fmt(0.2 * dx, 0.2 * dy, 0))
        ET.SubElement(shin, "joint", name=f"ankle_{leg}", type="hinge", pos="0 0 0",
                      axis=fmt(*ankle_axis), range=fmt(*ankle_range))
        ET.SubElement(shin, "geom", name=f"ankle_{leg}_geom", type="capsule", size="0.08",
                      fromto=fmt(0, 0, 0, 0.4 * dx, 0.4 * dy, 0))
    actuator = root.find("actuator")
    for joint, high in zip(_ANT_MOTORS, robot.action_bound, strict=True):
        ET.SubElement(actuator, "motor", joint=joint, gear="1", ctrllimited="true",
                      ctrlrange=fmt(-high, high))


def _build_point(robot: Robot, worldbody: ET.Element, root: ET.Element, base_z: float) -> None:
    # HIRO's point.xml: the body sits on the ground, its sphere and heading arrow 0.5 above.
    ET.SubElement(root.find("default"), "joint", limited="false", armature="0", damping="0")
    torso = ET.SubElement(worldbody, "body", name="torso", pos=fmt(0, 0, base_z))
    ET.SubElement(torso, "geom", name="torso_geom", type="sphere", size="0.5", pos="0 0 0.5")
    ET.SubElement(torso, "geom", name="arrow_geom", type="box", size="0.5 0.1 0.1",
                  pos="0.6 0 0.5")
    ET.SubElement(torso, "joint", name="ballx", type="slide", axis="1 0 0", pos="0 0 0")
    ET.SubElement(torso, "joint", name="bally", type="slide", axis="0 1 0", pos="0 0 0")
    ET.SubElement(torso, "joint", name="rot", type="hinge", axis="0 0 1", pos="0 0 0")
    # HIRO's "dummy actuators for providing ranges": ctrl stays 0, the step sets qpos.
    actuator = root.find("actuator")
    for joint, high in zip(("ballx", "rot"), robot.action_bound, strict=True):
        ET.SubElement(actuator, "motor", joint=joint, ctrllimited="true",
                      ctrlrange=fmt(-high, high))


def _build_ball(robot: Robot, worldbody: ET.Element, root: ET.Element, base_z: float) -> None:
    z0 = base_z + robot.start_height
    torso = ET.SubElement(worldbody, "body", name="torso", pos=fmt(0, 0, z0))
    # condim 1 with priority (so it wins over the floor's condim 3): frictionless contacts,
    # so the damped slides alone set the speed (gear / damping = 2.5 units/s at full action).
    ET.SubElement(torso, "geom", name="torso_geom", type="sphere", size="0.5", mass="0.1",
                  condim="1", priority="1")
    for axis, vec in (("x", "1 0 0"), ("y", "0 1 0")):
        ET.SubElement(torso, "joint", name=f"slide_{axis}", type="slide", axis=vec,
                      limited="false", damping="0.2", armature="0")
    # ref = z0 makes qpos[2] the absolute height, as the ant's free joint reports it.
    ET.SubElement(torso, "joint", name="slide_z", type="slide", axis="0 0 1", ref=fmt(z0),
                  limited="false", damping="0", armature="0")
    actuator = root.find("actuator")
    for axis, high in zip(("x", "y"), robot.action_bound, strict=True):
        ET.SubElement(actuator, "motor", joint=f"slide_{axis}", gear="0.5", ctrllimited="true",
                      ctrlrange=fmt(-high, high))


_BUILDERS = {"ant": _build_ant, "point": _build_point, "ball": _build_ball}

ROBOTS: dict[str, Robot] = {
    "ant": Robot(
        name="ant",
        maze_scale=8.0,
        nq=15,
        nv=14,
        nu=8,
        action_bound=(30.0,) * 8,
        subgoal_bound=(10, 10, 0.5, 1, 1, 1, 1, 0.5, 0.3, 0.5, 0.3, 0.5, 0.3, 0.5, 0.3),
        # z measured at rest by `hflow envs check` (upright pose: unit quaternion, joints 0).
        upright=(0.62, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        start_height=0.75,
        geom_default=(("condim", "3"), ("conaffinity", "0"), ("margin", "0.01"),
                      ("friction", "1 0.5 0.5"), ("solref", ".02 1"), ("solimp", ".8 .8 .01"),
                      ("density", "5.0")),
    ),
    # HIRO's point_maze.gin: subgoal range +-10 in every element (x, y and orientation).
    "point": Robot(
        name="point",
        maze_scale=4.0,
        nq=3,
        nv=3,
        nu=2,
        action_bound=(1.0, 0.25),
        subgoal_bound=(10, 10, 10),
        upright=(0.0,),  # heading along +x
        start_height=0.0,
        geom_default=(("condim", "3"), ("conaffinity", "0"), ("margin", "0"),
                      ("friction", "1 0.5 0.5"), ("density", "100")),
        frame_skip=1,
        drive="kinematic",
        default_lo=2,
        zero_xy=False,
    ),
    "ball": Robot(
        name="ball",
        maze_scale=4.0,
        nq=3,
        nv=3,
        nu=2,
        action_bound=(1.0, 1.0),
        subgoal_bound=(5, 5, 0.5),
        upright=(0.5,),
        start_height=0.5,
        geom_default=(("condim", "3"), ("conaffinity", "0"), ("margin", "0"),
                      ("friction", "1 0.5 0.5"), ("density", "100")),
    ),
}
