"""Sweeps on Ray Tune: Optuna proposes, ASHA stops, every trial lands in the results table.

The only package that imports Ray; ``wsl.train`` below it knows nothing of Tune.
"""

from wsl.sweep.config import Param, SweepConfig
from wsl.sweep.promote import promote
from wsl.sweep.runner import resume_sweep, run_sweep

__all__ = ["Param", "SweepConfig", "promote", "resume_sweep", "run_sweep"]
