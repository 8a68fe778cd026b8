"""AntMaze stand-ins: maze maps, the cell planner, the walker policy and the dataset generator."""
