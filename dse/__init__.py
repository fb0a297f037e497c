"""dse: vectorized design-space exploration of LLM inference performance.

Typical use::

    import dse
    spec = dse.load_sweep("my_sweep.toml")     # or dse.load_sweep() for the bundled default
    ds = dse.evaluate(spec)                      # xarray.Dataset of kernel outputs
    summary = dse.run_sweep(spec, "out/")        # results/pareto/best Parquet files
"""
__version__ = "0.1.0"

from .config import (ConfigError, Hardware, Model, SweepSpec, load_hardware,  # noqa: E402
                     load_model, load_sweep, parse_sweep)
from .evaluate import derive, evaluate  # noqa: E402
from .explain import explain  # noqa: E402
from .sweep import run_sweep  # noqa: E402

__all__ = ["ConfigError", "Hardware", "Model", "SweepSpec", "load_hardware", "load_model",
           "load_sweep", "parse_sweep", "evaluate", "derive", "explain", "run_sweep"]
