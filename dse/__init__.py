"""dse: vectorized design-space exploration of LLM inference performance.

Typical use::

    import dse
    spec = dse.load_sweep("my_sweep.toml")     # or dse.load_sweep() for the bundled default
    ds = dse.evaluate(spec)                      # xarray.Dataset of kernel outputs
    summary = dse.run_sweep(spec, "out/")        # configurations/, pareto and best Parquet
    sweep = dse.open("out/")                     # its tables: .best.pandas(), .pareto.duckdb(),
    cube = sweep.xarray()                        # .results.dataset(); the results over the axes
    frame = dse.to_frame(ds)                     # an evaluation as one flat pandas table
    table = dse.recommend("llama3_70b", 2048, 256, max_ttft_s=1, max_tpot_s=0.05)

The public names load on first use (PEP 562), so ``import dse.cli`` stays light.
"""
import sys
import types
from importlib import import_module

__version__ = "0.1.0"

_PUBLIC = {
    "ConfigError": "errors", "OutputError": "errors",
    "Hardware": "config", "Model": "config", "SweepSpec": "config",
    "load_hardware": "config", "load_model": "config", "load_sweep": "config",
    "parse_sweep": "config",
    "evaluate": "evaluate", "derive": "evaluate",
    "explain": "explain",
    "run_sweep": "sweep",
    "recommend": "recommend",
    "open": "tables", "to_frame": "frame",
}
__all__ = list(_PUBLIC)


class _Package(types.ModuleType):
    """``dse.evaluate`` and ``dse.explain`` are both functions and submodules: importing
    the submodule must not shadow the function (the import system sets the attribute)."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and _PUBLIC.get(name) == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'dse' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_PUBLIC])
