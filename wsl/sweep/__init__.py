"""Sweeps on Ray Tune: Optuna proposes, ASHA stops, every trial lands in the results table.

The only package that imports Ray, and only where it runs something
(``runner``, ``storage``, ``promote``, ``search``, ``recorder``, ``progress``): ``import
wsl.sweep.config`` stays Ray-free, so the report can read a sweep's config
without starting Ray's imports (it imports torch, through the training
config: the query layer reads objectives from ``wsl.objectives`` instead). ``wsl.train`` below it knows
nothing of Tune. Promotion is ``wsl.sweep.promote.promote`` (the module's
name would shadow a function of that name here).
"""

from wsl.sweep.config import Param, SweepConfig

__all__ = ["Param", "SweepConfig", "resume_sweep", "run_sweep"]


def __getattr__(name: str):
    """The Ray-backed entry points, imported on first use."""
    if name in ("run_sweep", "resume_sweep"):
        from wsl.sweep import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'wsl.sweep' has no attribute {name!r}")
