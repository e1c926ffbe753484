"""Maze layouts (HIRO's grids) and the layout -> MJCF builder.

Cell (row i, col j) is centred at (S*j - x_r, S*i - y_r) with S the robot's maze scale and
(x_r, y_r) the centre of the robot's cell, so the robot starts at the origin. Walls are boxes
of half-size (S/2, S/2, H*S/2) with H = 0.5; a layout with chasms is raised onto platforms
whose top is at H*S, one per non-chasm cell.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from hflow import HflowError
from hflow.envs.robots import Robot, fmt

WALL, FREE, CHASM, ROBOT = 1, 0, -1, "r"
MOVABLE = ("X", "Y", "Z", "XY", "XZ", "YZ", "XYZ")
CELL_CODES = (WALL, FREE, CHASM, ROBOT, *MOVABLE)
HEIGHT = 0.5  # wall height as a fraction of S (HIRO's maze_height)

LAYOUTS: dict[str, list[list]] = {
    "maze": [
        [1, 1, 1, 1, 1],
        [1, "r", 0, 0, 1],
        [1, 1, 1, 0, 1],
        [1, 0, 0, 0, 1],
        [1, 1, 1, 1, 1],
    ],
    "push": [
        [1, 1, 1, 1, 1],
        [1, 0, "r", 1, 1],
        [1, 0, "XY", 0, 1],
        [1, 1, 0, 1, 1],
        [1, 1, 1, 1, 1],
    ],
    "fall": [
        [1, 1, 1, 1],
        [1, "r", 0, 1],
        [1, 0, "YZ", 1],
        [1, -1, -1, 1],
        [1, 0, 0, 1],
        [1, 1, 1, 1],
    ],
}


class LayoutError(HflowError):
    pass


@dataclass(frozen=True)
class Block:
    name: str
    axes: str  # subset of "XYZ"
    row: int
    col: int


@dataclass(frozen=True)
class Layout:
    grid: tuple[tuple, ...]
    robot_cell: tuple[int, int]

    @classmethod
    def parse(cls, grid: list[list]) -> Layout:
        """Validates a grid; errors name the offending cell."""
        if not grid or not all(isinstance(row, list | tuple) for row in grid):
            raise LayoutError("a layout is a non-empty list of rows")
        width = len(grid[0])
        robot = []
        for i, row in enumerate(grid):
            if len(row) != width:
                raise LayoutError(f"layout row {i} has {len(row)} cells, row 0 has {width}")
            for j, cell in enumerate(row):
                if isinstance(cell, bool) or cell not in CELL_CODES:
                    raise LayoutError(
                        f"layout cell (row {i}, col {j}) is {cell!r}; allowed: "
                        f"{', '.join(repr(c) for c in CELL_CODES)}")
                if cell == ROBOT:
                    robot.append((i, j))
        if len(robot) != 1:
            raise LayoutError(f"a layout needs exactly one robot cell 'r', found {len(robot)}"
                              + (f" at {robot}" if robot else ""))
        for i, row in enumerate(grid):
            for j, cell in enumerate(row):
                border = i in (0, len(grid) - 1) or j in (0, width - 1)
                if border and cell != WALL:
                    raise LayoutError(f"layout cell (row {i}, col {j}) is on the border and must "
                                      f"be a wall (1), not {cell!r}")
        return cls(tuple(tuple(r) for r in grid), robot[0])

    @property
    def elevated(self) -> bool:
        return any(cell == CHASM for row in self.grid for cell in row)

    def cells(self, *codes):
        for i, row in enumerate(self.grid):
            for j, cell in enumerate(row):
                if cell in codes:
                    yield i, j

    def center(self, i: int, j: int, scale: float) -> tuple[float, float]:
        ri, rj = self.robot_cell
        return (scale * (j - rj), scale * (i - ri))

    @property
    def blocks(self) -> list[Block]:
        return [Block(f"block_{i}_{j}", self.grid[i][j], i, j) for i, j in self.cells(*MOVABLE)]

    def extent(self, scale: float) -> tuple[float, float, float, float]:
        """(xmin, xmax, ymin, ymax) of the whole grid, walls included."""
        x0, y0 = self.center(0, 0, scale)
        x1, y1 = self.center(len(self.grid) - 1, len(self.grid[0]) - 1, scale)
        return (x0 - scale / 2, x1 + scale / 2, y0 - scale / 2, y1 + scale / 2)


def build_mjcf(layout: Layout, robot: Robot, block_shrink: float = 0.99) -> str:
    """The task's MJCF: robot, floor, walls, platforms and movable blocks.

    block_shrink: x/y size factor of blocks that cannot fall. HIRO's 1.0 makes the Push
    block touch the corners of its diagonal neighbour walls; MuJoCo >= 3 then wedges it between
    those edge contacts and the floor, and the 0.0002 kg block needs about 8 N to move
    (docs/tasks.md has the numbers). Falling blocks always use HIRO's 0.99.
    """
    S = robot.maze_scale
    half_h = HEIGHT * S / 2
    base_z = HEIGHT * S if layout.elevated else 0.0

    root = ET.Element("mujoco", model=f"{robot.name}_maze")
    ET.SubElement(root, "compiler", inertiafromgeom="true", angle="degree")
    ET.SubElement(root, "option", timestep=fmt(robot.timestep), integrator="RK4")
    default = ET.SubElement(root, "default")
    geom_default = dict(robot.geom_default)
    if layout.blocks and robot.name == "ant":
        # HIRO stiffens contacts when blocks are present for better contact detection.
        geom_default["solimp"] = ".995 .995 .01"
    ET.SubElement(default, "geom", **geom_default)
    worldbody = ET.SubElement(root, "worldbody")
    ET.SubElement(root, "actuator")
    ET.SubElement(worldbody, "light", directional="true", diffuse="1 1 1", pos="0 0 30",
                  dir="0 0 -1")
    ET.SubElement(worldbody, "geom", name="floor", type="plane", pos="0 0 0",
                  size=fmt(20 * S, 20 * S, 1), conaffinity="1", condim="3",
                  rgba="0.8 0.9 0.8 1")
    robot.build(worldbody, root, base_z)

    for i, row in enumerate(layout.grid):
        for j, cell in enumerate(row):
            x, y = layout.center(i, j, S)
            if layout.elevated and cell != CHASM:
                ET.SubElement(worldbody, "geom", name=f"platform_{i}_{j}", type="box",
                              pos=fmt(x, y, half_h), size=fmt(S / 2, S / 2, half_h),
                              contype="1", conaffinity="1", rgba="0.9 0.9 0.9 1")
            if cell == WALL:
                ET.SubElement(worldbody, "geom", name=f"wall_{i}_{j}", type="box",
                              pos=fmt(x, y, base_z + half_h), size=fmt(S / 2, S / 2, half_h),
                              contype="1", conaffinity="1", rgba="0.4 0.4 0.4 1")
            elif cell in MOVABLE:
                _add_block(worldbody, cell, i, j, x, y, S, half_h, base_z, block_shrink)
    return ET.tostring(root, encoding="unicode")


def _add_block(worldbody, axes, i, j, x, y, S, half_h, base_z, block_shrink) -> None:
    # A block that can fall is shrunk a little (and heavier) so it drops through the gap.
    falls = "Z" in axes
    shrink = 0.99 if falls else block_shrink
    body = ET.SubElement(worldbody, "body", name=f"block_{i}_{j}", pos=fmt(x, y, base_z + half_h))
    geom = dict(name=f"block_{i}_{j}_geom", type="box", pos="0 0 0",
                size=fmt(S / 2 * shrink, S / 2 * shrink, half_h),
                mass="0.001" if falls else "0.0002", contype="1", conaffinity="1",
                rgba="0.9 0.1 0.1 1")
    ET.SubElement(body, "geom", **geom)
    for axis, vec in (("X", "1 0 0"), ("Y", "0 1 0")):
        if axis in axes:
            ET.SubElement(body, "joint", name=f"block_{i}_{j}_{axis.lower()}", type="slide",
                          axis=vec, armature="0", damping="0", margin="0.01",
                          limited="true" if falls else "false", range=fmt(-S, S))
    if falls:
        ET.SubElement(body, "joint", name=f"block_{i}_{j}_z", type="slide", axis="0 0 1",
                      armature="0", damping="0", margin="0.01", limited="true",
                      range=fmt(-base_z, 0))
