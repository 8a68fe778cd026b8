"""AntMaze mazes and planner: the six tasks, cell geometry, BFS paths, waypoint control."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from scipy.sparse import lil_matrix
from scipy.sparse.csgraph import shortest_path

from fdivrl.data.antmaze import mazes
from fdivrl.data.antmaze.planner import SWITCH_RADIUS, WAYPOINT_JITTER, WaypointController, plan_path
from fdivrl.errors import ConfigError

ALL_TASKS = list(mazes.TASKS.values())


def _grid_distances(maze_map: mazes.MazeMap) -> tuple[dict[mazes.Cell, int], np.ndarray]:
    """All-pairs shortest path lengths between free cells, computed independently of the planner."""
    free = mazes.free_mask(maze_map)
    cells = [tuple(int(v) for v in c) for c in np.argwhere(free)]
    index = {c: k for k, c in enumerate(cells)}
    graph = lil_matrix((len(cells), len(cells)))
    for (r, c), k in index.items():
        for nb in ((r + 1, c), (r, c + 1)):
            if nb in index:
                graph[k, index[nb]] = graph[index[nb], k] = 1
    return index, shortest_path(graph.tocsr(), unweighted=True, directed=False)


def _make(spec: gym.envs.registration.EnvSpec) -> gym.Env:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gym.make(spec)


def test_six_tasks_follow_minari_v1():
    assert list(mazes.TASKS) == [
        "umaze",
        "umaze-diverse",
        "medium-play",
        "medium-diverse",
        "large-play",
        "large-diverse",
    ]
    assert {t.name: t.env_id for t in ALL_TASKS} == {
        "umaze": "AntMaze_UMaze-v4",
        "umaze-diverse": "AntMaze_UMaze-v4",
        "medium-play": "AntMaze_Medium-v4",
        "medium-diverse": "AntMaze_Medium_Diverse_GR-v4",
        "large-play": "AntMaze_Large-v4",
        "large-diverse": "AntMaze_Large_Diverse_GR-v4",
    }
    assert {t.name: t.max_episode_steps for t in ALL_TASKS} == {
        t.name: 700 if t.name.startswith("umaze") else 1000 for t in ALL_TASKS
    }
    umaze = mazes.train_map(mazes.get_task("umaze"))
    assert umaze[1][1] == mazes.GOAL and umaze[3][1] == mazes.RESET
    assert mazes.goal_cells(umaze) == [(1, 1)] and mazes.reset_cells(umaze) == [(3, 1)]
    assert mazes.get_task("medium-diverse").eval_goal == (6, 6)
    assert mazes.get_task("large-play").eval_goal == (7, 9)
    assert all(t.dataset_id == f"fdivrl/antmaze/{t.name}-v1" for t in ALL_TASKS)
    with pytest.raises(ConfigError, match=r"unknown AntMaze task 'tiny'.*umaze-diverse"):
        mazes.get_task("tiny")


@pytest.mark.parametrize("task", ALL_TASKS, ids=lambda t: t.name)
def test_specs_and_geometry_match_gymnasium_robotics(task: mazes.MazeTask):
    specs = ((mazes.collection_spec(task), mazes.train_map(task)), (mazes.eval_spec(task), mazes.eval_map(task)))
    for spec, maze_map in specs:
        assert spec.id == task.env_id and spec.max_episode_steps == task.max_episode_steps
        assert spec.kwargs["continuing_task"] is True and spec.kwargs["reset_target"] is False
        env = _make(spec)
        maze = env.unwrapped.maze
        assert maze.maze_size_scaling == mazes.MAZE_SIZE_SCALING
        shape = mazes.map_shape(maze_map)
        cells = np.array([(i, j) for i in range(shape[0]) for j in range(shape[1])])
        expected = np.array([maze.cell_rowcol_to_xy(c) for c in cells])
        np.testing.assert_allclose(mazes.cell_to_xy(cells, shape), expected)
        np.testing.assert_array_equal(mazes.xy_to_cell(expected + 1.9, shape), cells)  # anywhere in the cell
        np.testing.assert_array_equal(mazes.xy_to_cell(expected - 1.9, shape), cells)
        goals = {tuple(mazes.xy_to_cell(xy, shape)) for xy in maze.unique_goal_locations}
        resets = {tuple(mazes.xy_to_cell(xy, shape)) for xy in maze.unique_reset_locations}
        assert goals == set(mazes.goal_cells(maze_map)) and resets == set(mazes.reset_cells(maze_map))
        env.close()
    eval_map = mazes.eval_map(task)
    assert mazes.goal_cells(eval_map) == [task.eval_goal] and mazes.reset_cells(eval_map) == [task.eval_start]
    np.testing.assert_array_equal(mazes.free_mask(eval_map), mazes.free_mask(mazes.train_map(task)))


def test_diverse_maps_draw_from_their_c_cells_and_play_maps_from_every_cell():
    diverse, play = mazes.get_task("medium-diverse"), mazes.get_task("medium-play")
    c_cells = {(1, 1), (2, 6), (5, 1), (6, 5)}
    assert set(mazes.goal_cells(mazes.train_map(diverse))) == c_cells
    assert set(mazes.reset_cells(mazes.train_map(diverse))) == c_cells
    free = {tuple(int(v) for v in c) for c in np.argwhere(mazes.free_mask(mazes.train_map(play)))}
    assert set(mazes.goal_cells(mazes.train_map(play))) == free == set(mazes.reset_cells(mazes.train_map(play)))


@pytest.mark.parametrize("task", ALL_TASKS, ids=lambda t: t.name)
def test_paths_are_shortest_and_through_free_cells(task: mazes.MazeTask):
    maze_map = mazes.train_map(task)
    free = mazes.free_mask(maze_map)
    index, dist = _grid_distances(maze_map)
    pairs = [(s, g) for s in mazes.reset_cells(maze_map) for g in mazes.goal_cells(maze_map)]
    pairs.append((task.eval_start, task.eval_goal))
    for start, goal in pairs:
        path = plan_path(maze_map, start, goal)
        assert path[0] == start and path[-1] == goal
        assert all(free[c] for c in path)
        steps = np.abs(np.diff(np.array(path), axis=0)).sum(axis=1)
        assert np.all(steps == 1), f"{start}->{goal}: not 4-connected"
        assert len(path) - 1 == dist[index[start], index[goal]]


def test_plan_path_refuses_walls_and_unreachable_cells():
    u_maze = mazes.train_map(mazes.get_task("umaze"))
    with pytest.raises(ConfigError, match=r"start cell \(0, 0\) is not a free cell"):
        plan_path(u_maze, (0, 0), (1, 1))
    with pytest.raises(ConfigError, match=r"goal cell \(9, 1\) is not a free cell"):
        plan_path(u_maze, (1, 1), (9, 1))
    island = ((1, 1, 1, 1, 1), (1, 0, 1, 0, 1), (1, 1, 1, 1, 1))
    with pytest.raises(ConfigError, match="cannot be reached"):
        plan_path(island, (1, 1), (1, 3))
    assert plan_path(island, (1, 1), (1, 1)) == [(1, 1)]


def _umaze_controller(n: int, seed: int = 0, jitter: float = WAYPOINT_JITTER) -> tuple[WaypointController, np.ndarray]:
    maze_map = mazes.train_map(mazes.get_task("umaze"))
    controller = WaypointController(maze_map, n, np.random.default_rng(seed), jitter=jitter)
    shape = mazes.map_shape(maze_map)
    start, goal = mazes.cell_to_xy(np.array([3, 1]), shape), mazes.cell_to_xy(np.array([1, 1]), shape) + 0.3
    controller.plan(np.ones(n, dtype=bool), np.tile(start, (n, 1)), np.tile(goal, (n, 1)))
    return controller, goal


def test_waypoints_follow_the_path_and_switch_within_the_radius():
    controller, goal = _umaze_controller(1, jitter=0.0)
    path = [(3, 2), (3, 3), (2, 3), (1, 3), (1, 2)]  # (3, 1) -> (1, 1) without the start cell
    expected = mazes.cell_to_xy(np.array(path), (5, 5))
    np.testing.assert_allclose(controller.waypoints[0, :5], expected)
    np.testing.assert_allclose(controller.waypoints[0, 5], goal)  # the last waypoint is the goal itself
    assert controller.count[0] == 6

    ant = expected[0] + [SWITCH_RADIUS + 0.01, 0.0]  # just outside the radius: keep heading there
    delta = controller.goal_delta(ant[None])
    assert delta.dtype == np.float32 and controller.index[0] == 0
    np.testing.assert_allclose(delta[0], expected[0] - ant, atol=1e-6)

    ant = expected[0] + [0.0, SWITCH_RADIUS - 0.01]  # inside: switch to the next one, one per call
    delta = controller.goal_delta(ant[None])
    assert controller.index[0] == 1
    np.testing.assert_allclose(delta[0], expected[1] - ant, atol=1e-6)

    controller.index[0] = 5
    delta = controller.goal_delta(goal[None])  # at the goal: there is no waypoint past it
    assert controller.index[0] == 5 and np.allclose(delta, 0.0)


def test_waypoints_switch_per_env_independently():
    controller, _ = _umaze_controller(3, jitter=0.0)
    first = controller.waypoints[0, 0]
    ant = np.stack([first, first + 2.0, first])
    controller.goal_delta(ant)
    np.testing.assert_array_equal(controller.index, [1, 0, 1])
    controller.plan(np.array([True, False, False]), ant, np.tile(controller.waypoints[0, 5], (3, 1)))
    np.testing.assert_array_equal(controller.index, [0, 0, 1])  # only the masked env starts over


def test_ant_in_the_goal_cell_heads_straight_for_the_goal():
    maze_map = mazes.train_map(mazes.get_task("umaze"))
    controller = WaypointController(maze_map, 1, np.random.default_rng(0))
    ant, goal = np.array([[-4.5, 3.5]]), np.array([[-3.2, 4.4]])  # both in cell (1, 1)
    controller.plan(np.ones(1, dtype=bool), ant, goal)
    assert controller.count[0] == 1
    np.testing.assert_allclose(controller.goal_delta(ant), goal - ant, rtol=1e-6)


def test_waypoint_jitter_is_uniform_below_the_cell_centres():
    n = 4000
    controller, goal = _umaze_controller(n, seed=1)
    centres = mazes.cell_to_xy(np.array([(3, 2), (3, 3), (2, 3), (1, 3), (1, 2)]), (5, 5))
    offsets = (centres[None] - controller.waypoints[:, :5]).reshape(-1)  # = U[0, 0.1) per axis
    assert offsets.min() >= 0.0 and offsets.max() < WAYPOINT_JITTER
    assert abs(offsets.mean() - WAYPOINT_JITTER / 2) < 0.002  # standard error ~0.0002
    assert abs(offsets.var() - WAYPOINT_JITTER**2 / 12) < 0.0001
    hist = np.histogram(offsets, bins=10, range=(0.0, WAYPOINT_JITTER))[0] / offsets.size
    assert np.all(np.abs(hist - 0.1) < 0.01)
    np.testing.assert_array_equal(controller.waypoints[:, 5], np.tile(goal, (n, 1)))  # the goal: no jitter
    x_off, y_off = (centres[None] - controller.waypoints[:, :5]).reshape(-1, 2).T
    assert abs(np.corrcoef(x_off, y_off)[0, 1]) < 0.03  # independent per axis
