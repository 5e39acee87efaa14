"""Experiments of the paper, runnable from Python and the command line."""
