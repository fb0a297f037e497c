"""Offload to the host tier (the ``offload`` axis): what spills, what it costs per pass.

A configuration that does not fit in device memory may spill part of it to the hardware's
host memory (``host_memory_bytes`` per device) and stream that part over the host link
(``host_link_bytes_per_s``) every forward pass, as FlexGen (Sheng et al., ICML 2023),
DeepSpeed ZeRO-Inference and vLLM's ``--cpu-offload-gb`` (weights) or LMCache / vLLM's
KV offloading (KV cache) do. The engine spills the least that makes the point fit:

- ``weights``: static: the excess of the larger memory peak over the usable memory,
  at most all weights; every forward pass (each micro-batch through its stage) streams
  the spilled weights in. Continuous: enough weights that ``batch`` requests (at most the
  engine's running limit) fit at full context, at most all weights and the host memory;
  the KV memory this frees admits more requests. Every iteration streams them in.
- ``kv``: static: the excess of each peak, at most that peak's KV cache: prefill writes
  the prompts' spilled KV out once, every decode step reads the spilled part of the
  full-context KV cache in (conservative: the context grows to full only at the last
  step). Continuous: the KV cache spans device and host memory (admission counts both);
  every iteration reads the running requests' KV beyond the device's room in.
- ``none``: nothing spills (the configuration fits or is ``out_of_memory``).

A point whose excess exceeds what may spill, or the host memory, spills nothing and stays
``out_of_memory``. The kernel prices the spilled bytes per pass over the host link at the
preset's ``network_efficiency``, overlapped with the device's work (prefetching the next
layer while this one computes): a pass lasts max(device time, host-link time) (README
"Offload"). Left out: MoE expert offload that reads only the hit experts (the whole spilled
share streams), and the host link's latency.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from .axes import OFFLOAD

PHASES = ("prefill", "decode")  # the planes of ``host_bytes``: bytes per pass


def _da(term) -> xr.DataArray:
    dims, values = term
    return xr.DataArray(values, dims=dims)


def offload_terms(spec, c: dict, terms: dict, usable: np.ndarray) -> dict:
    """The spill of every point: ``offloaded_bytes`` (per device, held in host memory; 0
    where nothing spills), ``host_bytes`` (a leading dim of :data:`PHASES`: bytes each
    device streams over the host link per forward pass of prefill and decode; continuous
    serving's iterations take the decode plane) and ``slots`` (continuous admission with
    the spill), each as (dims, array) in grid order. ``terms``: the memory terms of
    :func:`dse.evaluate.memory_and_validity` (dims, array), the serving ones included.
    Without any offload value but ``none`` the arrays are zeros of no grid dims."""
    from .grid import GRID_DIMS
    if all(v == "none" for v in c["offload"]):
        return {"offloaded_bytes": ((), np.zeros(())),
                "host_bytes": (("phase",), np.zeros(len(PHASES))),
                "slots": terms["slots"]}
    t = {name: _da(terms[name]) for name in (
        "weight_bytes_per_device", "kv_cache_bytes_per_device", "activation_bytes_per_device",
        "kv_prompt_bytes", "decode_working_bytes", "kv_request_bytes", "working_bytes",
        "kv_room_bytes", "slots", "running_cap")}
    w = t["weight_bytes_per_device"]
    u = xr.DataArray(usable, dims=("hardware", "memory_capacity_scale"))
    # a host tier needs both its memory and its link (a preset giving one holds nothing)
    host = xr.DataArray([h.host_memory_bytes if h.host_link_bytes_per_s > 0 else 0.0
                         for h in spec.hardware], dims=("hardware",))
    mode = xr.DataArray(np.array([OFFLOAD.index(v) for v in c["offload"]]), dims=("offload",))
    kv_mode, w_mode = mode == OFFLOAD.index("kv"), mode == OFFLOAD.index("weights")
    zero = xr.DataArray(0.0)

    # static: the excess of each peak over the usable memory
    pre_x = np.maximum(w + t["kv_prompt_bytes"] + t["activation_bytes_per_device"] - u, 0.0)
    dec_x = np.maximum(w + t["kv_cache_bytes_per_device"] + t["decode_working_bytes"] - u,
                       0.0)
    x = np.maximum(pre_x, dec_x)
    ok_w = (x <= w) & (x <= host)
    ok_kv = (pre_x <= t["kv_prompt_bytes"]) & (dec_x <= t["kv_cache_bytes_per_device"]) \
        & (x <= host)
    # what spills: the excess and a byte more (memory - spill <= usable despite rounding)
    spill = np.minimum(x * (1.0 + 1e-12) + 1.0, xr.where(w_mode, np.minimum(w, host), host))
    st_off = xr.where(w_mode & ok_w, spill, xr.where(kv_mode & ok_kv, spill, zero))
    st_pre = xr.where(w_mode & ok_w, spill, xr.where(kv_mode & ok_kv, pre_x, zero))
    st_dec = xr.where(w_mode & ok_w, spill, xr.where(kv_mode & ok_kv, dec_x, zero))

    # continuous: the running limit, the weights' spill, the KV over device and host
    batch = xr.DataArray(np.asarray(c["batch"], float), dims=("batch",))
    cap = t["running_cap"]  # the replica's (dse.evaluate.serving_memory; 0: none)
    want = xr.where(cap > 0, np.minimum(batch, cap), batch)
    # the engine's KV room (dse.evaluate.serving_memory: its rule over its memory share);
    # a byte of weights moved to the host frees a byte of it (TensorRT-LLM's free rule
    # would give its fraction of the byte: taken as the whole byte)
    r_kv, room = t["kv_request_bytes"], t["kv_room_bytes"]
    spill_w = np.minimum(np.minimum(np.maximum(want * r_kv - room, 0.0), w), host)

    def admitted(room):
        n = np.floor(room / r_kv)
        return xr.where(cap > 0, np.minimum(n, cap), n).clip(min=0.0)
    slots_w = admitted(room + spill_w)
    slots_kv = xr.where(room > 0, admitted(room + host), 0.0)
    spill_kv = np.maximum(np.minimum(batch, slots_kv) * r_kv - room.clip(min=0.0), 0.0)
    # nothing spills where not one request fits (out_of_memory)
    ct_off = xr.where(w_mode & (slots_w >= 1), spill_w, xr.where(kv_mode, spill_kv, zero))
    slots = xr.where(w_mode, slots_w, xr.where(kv_mode, slots_kv, t["slots"]))

    continuous = xr.DataArray(np.array([v == "continuous" for v in c["serving"]]),
                              dims=("serving",))
    offloaded = xr.where(continuous, ct_off, st_off)
    host_bytes = xr.concat([xr.where(continuous, ct_off, st_pre),
                            xr.where(continuous, ct_off, st_dec)], dim="phase")

    def ordered(a: xr.DataArray, lead=()) -> tuple:
        dims = (*lead, *(d for d in GRID_DIMS if d in a.dims))
        return dims, np.ascontiguousarray(a.transpose(*dims).values, dtype=np.float64)
    return {"offloaded_bytes": ordered(offloaded), "host_bytes": ordered(host_bytes, ("phase",)),
            "slots": ordered(slots)}
