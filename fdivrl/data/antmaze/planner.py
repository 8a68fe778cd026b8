"""Waypoint control for AntMaze: a shortest cell path (BFS) turned into nearby x, y targets.

Why: minari's v1 AntMaze data were collected by a goal-reaching walker that only ever sees the
direction to a waypoint a cell or so away; a planner on the maze grid hands it those waypoints so
it can cross a whole maze. Following minari's controller: the path is planned once per episode
from the ant's cell to the goal cell; every intermediate waypoint is its cell's centre minus
U[0, 0.1) per axis (jitter, so transitions do not all pass through the exact centres); the last
waypoint is the goal position itself; the controller moves to the next waypoint as soon as the
ant is within 0.45 of the current one (the goal radius). Vectorized over ``n`` envs with numpy.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np

from fdivrl.data.antmaze.mazes import Cell, MazeMap, cell_to_xy, free_mask, map_shape, xy_to_cell
from fdivrl.errors import ConfigError

SWITCH_RADIUS = 0.45  # switch waypoints within this distance (AntMaze's goal radius)
WAYPOINT_JITTER = 0.1  # waypoints are cell centres minus U[0, WAYPOINT_JITTER) per axis
_MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))


class WaypointPolicy(Protocol):
    """A batched goal-reaching walker: one call per vector step.

    ``ant_obs`` is AntMaze's ``observation`` (ant qpos[2:] and qvel: 27 float32, no x, y);
    ``goal_delta`` is the raw (not normalized) waypoint − ant x, y. Returns actions in [-1, 1]
    of shape ``(n, 8)``; exploration noise is added by the caller, not the policy.
    """

    def __call__(self, ant_obs: np.ndarray, goal_delta: np.ndarray) -> np.ndarray: ...


def plan_path(maze_map: MazeMap, start: Cell, goal: Cell) -> list[Cell]:
    """Shortest 4-connected path of free cells from ``start`` to ``goal``, both included."""
    free = free_mask(maze_map)
    for name, cell in (("start", start), ("goal", goal)):
        inside = 0 <= cell[0] < free.shape[0] and 0 <= cell[1] < free.shape[1]
        if not inside or not free[cell]:
            raise ConfigError(f"{name} cell {tuple(cell)} is not a free cell of the {free.shape} maze")
    start, goal = (int(start[0]), int(start[1])), (int(goal[0]), int(goal[1]))
    parent: dict[Cell, Cell] = {start: start}
    queue = deque([start])
    while queue and goal not in parent:
        row, col = queue.popleft()
        for d_row, d_col in _MOVES:
            nxt = (row + d_row, col + d_col)
            inside = 0 <= nxt[0] < free.shape[0] and 0 <= nxt[1] < free.shape[1]
            if inside and nxt not in parent and free[nxt]:
                parent[nxt] = (row, col)
                queue.append(nxt)
    if goal not in parent:
        raise ConfigError(f"goal cell {goal} cannot be reached from start cell {start}")
    path = [goal]
    while path[-1] != start:
        path.append(parent[path[-1]])
    return path[::-1]


class WaypointController:
    """Per env: the current episode's waypoints and which one the ant is heading for."""

    def __init__(
        self,
        maze_map: MazeMap,
        n_envs: int,
        rng: np.random.Generator,
        switch_radius: float = SWITCH_RADIUS,
        jitter: float = WAYPOINT_JITTER,
    ) -> None:
        self.maze_map = maze_map
        self.shape = map_shape(maze_map)
        self.rng = rng
        self.switch_radius = switch_radius
        self.jitter = jitter
        longest = int(free_mask(maze_map).sum())  # no shortest path visits more cells than that
        self.waypoints = np.zeros((n_envs, longest, 2))
        self.count = np.ones(n_envs, dtype=np.int64)  # waypoints planned per env
        self.index = np.zeros(n_envs, dtype=np.int64)  # the one each env is heading for

    def plan(self, mask: np.ndarray, ant_xy: np.ndarray, goal_xy: np.ndarray) -> None:
        """Plan new episodes for the envs in ``mask`` from their ant and goal positions."""
        starts, goals = xy_to_cell(ant_xy, self.shape), xy_to_cell(goal_xy, self.shape)
        for i in np.flatnonzero(mask):
            path = plan_path(self.maze_map, tuple(starts[i]), tuple(goals[i]))
            inner = cell_to_xy(np.array(path[1:-1], dtype=np.int64).reshape(-1, 2), self.shape)
            inner -= self.jitter * self.rng.random(inner.shape)
            self.waypoints[i, : len(inner)] = inner
            self.waypoints[i, len(inner)] = goal_xy[i]
            self.count[i], self.index[i] = len(inner) + 1, 0

    def current(self) -> np.ndarray:
        """The waypoint each env is heading for, ``(n, 2)``."""
        return self.waypoints[np.arange(len(self.index)), self.index]

    def goal_delta(self, ant_xy: np.ndarray) -> np.ndarray:
        """Advance the envs within reach of their waypoint, then return waypoint − ant x, y (float32)."""
        reached = np.linalg.norm(self.current() - ant_xy, axis=-1) <= self.switch_radius
        self.index += reached & (self.index < self.count - 1)
        return (self.current() - ant_xy).astype(np.float32)
