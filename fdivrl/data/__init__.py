"""Datasets: minari loading and the local AntMaze stand-ins."""
