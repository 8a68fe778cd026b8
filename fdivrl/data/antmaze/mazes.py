"""The six D4RL AntMaze tasks as data, and the maze-cell geometry of gymnasium-robotics.

Why this module exists: the stand-in generator, the waypoint planner and evaluation must agree
with minari's ``D4RL/antmaze/*-v1`` datasets on env id, maze map, where episodes start and end,
and the episode limit. One table keeps those facts in one checkable place.

How minari's v1 data were collected (and so how the stand-ins are): ``gym.make(env_id,
continuing_task=True, reset_target=False)`` with the env's registered map, except plain umaze,
whose map is overridden to one goal cell (1, 1) and one reset cell (3, 1). Maps without markers
("play" maps and umaze-diverse) let every free cell be a goal or a reset cell; the
``*_DIVERSE_GR`` maps restrict both to their ``c`` cells. Every reset draws a goal and a start
cell at random (the start in another cell than the goal); the goal then stays fixed for the episode.

Geometry (gymnasium-robotics ``Maze``, ``maze_size_scaling=4`` in AntMaze): cell (row, col) of an
``H x W`` map has its centre at ``x = (col + 0.5)·4 − W·2``, ``y = H·2 − (row + 0.5)·4``; rows
grow downwards, y upwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from fdivrl.errors import ConfigError

Cell = tuple[int, int]
MazeMap = tuple[tuple[int | str, ...], ...]

MAZE_SIZE_SCALING = 4.0  # AntMaze v4 builds every maze from 4 m x 4 m cells
WALL = 1
RESET, GOAL, COMBINED = "r", "g", "c"  # gymnasium-robotics' cell markers
DATASET_NAMESPACE = "fdivrl/antmaze"  # never D4RL/: stand-ins must not hide or impersonate real data


@dataclass(frozen=True)
class MazeTask:
    """One D4RL AntMaze task: what minari's v1 script collected in, and its fixed eval layout."""

    name: str  # "umaze", "medium-play", ...
    env_id: str  # registered gymnasium-robotics id (v4: 27-dim ant observation)
    map_name: str  # constant in gymnasium_robotics.envs.maze.maps holding the walls (and markers)
    max_episode_steps: int  # 700 (umaze) / 1000; also the collection env's time limit
    eval_start: Cell  # fixed start cell of the eval env
    eval_goal: Cell  # fixed goal cell of the eval env
    train_start: Cell | None = None  # collection map override (plain umaze only): single reset cell
    train_goal: Cell | None = None  # ... and single goal cell

    @property
    def dataset_id(self) -> str:
        """The local stand-in's minari id."""
        return f"{DATASET_NAMESPACE}/{self.name}-v1"

    @property
    def d4rl_id(self) -> str:
        """The real dataset this task stands in for."""
        return f"D4RL/antmaze/{self.name}-v1"


TASKS: dict[str, MazeTask] = {
    task.name: task
    for task in (
        MazeTask("umaze", "AntMaze_UMaze-v4", "U_MAZE", 700, (3, 1), (1, 1), train_start=(3, 1), train_goal=(1, 1)),
        MazeTask("umaze-diverse", "AntMaze_UMaze-v4", "U_MAZE", 700, (3, 1), (1, 1)),
        MazeTask("medium-play", "AntMaze_Medium-v4", "MEDIUM_MAZE", 1000, (1, 1), (6, 6)),
        MazeTask("medium-diverse", "AntMaze_Medium_Diverse_GR-v4", "MEDIUM_MAZE_DIVERSE_GR", 1000, (1, 1), (6, 6)),
        MazeTask("large-play", "AntMaze_Large-v4", "LARGE_MAZE", 1000, (1, 1), (7, 9)),
        MazeTask("large-diverse", "AntMaze_Large_Diverse_GR-v4", "LARGE_MAZE_DIVERSE_GR", 1000, (1, 1), (7, 9)),
    )
}


def get_task(name: str) -> MazeTask:
    """The task called ``name``; a one-line ConfigError listing the valid names otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown AntMaze task '{name}'; choose one of: {', '.join(TASKS)}") from None


# --------------------------------------------------------------------------------------------
# Maps


def _robotics_maps() -> Any:
    # gymnasium_robotics prints an unrelated Adroit notice on first import
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from gymnasium_robotics.envs.maze import maps
    return maps


def _walls_only(maze_map: Any) -> list[list[int | str]]:
    return [[WALL if cell == WALL else 0 for cell in row] for row in maze_map]


def _with_markers(maze_map: Any, start: Cell, goal: Cell) -> MazeMap:
    rows = _walls_only(maze_map)
    rows[start[0]][start[1]] = RESET
    rows[goal[0]][goal[1]] = GOAL
    return tuple(tuple(row) for row in rows)


def train_map(task: MazeTask) -> MazeMap:
    """The collection env's maze map, markers included (as gymnasium-robotics reads them)."""
    base = getattr(_robotics_maps(), task.map_name)
    if task.train_start is not None and task.train_goal is not None:
        return _with_markers(base, task.train_start, task.train_goal)
    return tuple(tuple(row) for row in base)


def eval_map(task: MazeTask) -> MazeMap:
    """The collection walls with one reset and one goal marker: a fixed eval start and goal.

    minari's v1 umaze eval map has other walls than its training map (Minari issue #304); the
    stand-in keeps the training walls so the eval task is the one the data cover.
    """
    return _with_markers(getattr(_robotics_maps(), task.map_name), task.eval_start, task.eval_goal)


def free_mask(maze_map: MazeMap) -> np.ndarray:
    """Boolean grid, True where the ant can be (every cell that is not a wall)."""
    return np.array([[cell != WALL for cell in row] for row in maze_map], dtype=bool)


def marked_cells(maze_map: MazeMap, markers: tuple[str, ...]) -> list[Cell]:
    """Cells carrying any of ``markers``; without such a cell the env uses every unmarked free cell."""
    marked = [(i, j) for i, row in enumerate(maze_map) for j, cell in enumerate(row) if cell in markers]
    return marked or [(i, j) for i, row in enumerate(maze_map) for j, cell in enumerate(row) if cell == 0]


def goal_cells(maze_map: MazeMap) -> list[Cell]:
    """Cells the env can draw a goal from."""
    return marked_cells(maze_map, (GOAL, COMBINED))


def reset_cells(maze_map: MazeMap) -> list[Cell]:
    """Cells the env can draw a start from."""
    return marked_cells(maze_map, (RESET, COMBINED))


# --------------------------------------------------------------------------------------------
# Geometry


def cell_to_xy(cells: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centres (x, y) of ``(..., 2)`` (row, col) cells of a map with ``shape = (rows, cols)``."""
    cells = np.asarray(cells, dtype=np.float64)
    rows, cols = shape
    x = (cells[..., 1] + 0.5) * MAZE_SIZE_SCALING - cols * MAZE_SIZE_SCALING / 2
    y = rows * MAZE_SIZE_SCALING / 2 - (cells[..., 0] + 0.5) * MAZE_SIZE_SCALING
    return np.stack([x, y], axis=-1)


def xy_to_cell(xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(row, col) int cells of ``(..., 2)`` positions; inverse of :func:`cell_to_xy` (floor)."""
    xy = np.asarray(xy, dtype=np.float64)
    rows, cols = shape
    row = np.floor((rows * MAZE_SIZE_SCALING / 2 - xy[..., 1]) / MAZE_SIZE_SCALING)
    col = np.floor((xy[..., 0] + cols * MAZE_SIZE_SCALING / 2) / MAZE_SIZE_SCALING)
    return np.stack([row, col], axis=-1).astype(np.int64)


def map_shape(maze_map: MazeMap) -> tuple[int, int]:
    return len(maze_map), len(maze_map[0])


# --------------------------------------------------------------------------------------------
# Env specs


def _spec(task: MazeTask, maze_map: MazeMap) -> Any:
    import gymnasium as gym

    from fdivrl.data.datasets import register_robotics_envs

    register_robotics_envs()
    base = gym.spec(task.env_id)
    kwargs = {
        **base.kwargs,
        "maze_map": [list(row) for row in maze_map],
        "continuing_task": True,
        "reset_target": False,
    }
    return dataclasses.replace(base, kwargs=kwargs, max_episode_steps=task.max_episode_steps)


def collection_spec(task: MazeTask) -> Any:
    """EnvSpec minari's v1 script collected in: continuing task, fixed target, registered limit."""
    return _spec(task, train_map(task))


def eval_spec(task: MazeTask) -> Any:
    """EnvSpec stored as the dataset's eval env: fixed start and goal, otherwise as collection.

    Like minari's, it keeps ``continuing_task=True``; fdivrl's evaluation switches it off itself
    for the D4RL-style success score.
    """
    return _spec(task, eval_map(task))
