"""Self-tuning on the GPU: `python -m fusedattn tune` times each op's candidate launch
configurations on the GPU it runs on and caches the winners per (op, backend, device name,
dtype, shape class) in a user cache directory; later calls read them (`lookup`). Without a GPU
it says so and exits non-zero: nothing is tuned on a guess.

The cache: $FUSEDATTN_CACHE_DIR, else $XDG_CACHE_HOME/fusedattn, else ~/.cache/fusedattn;
the file tuning.json, {key: {"config": {...}, "us": ..., "default_us": ..., "date": ...}}.
An op takes part through fusedattn.ops.<op>.tuning: CANDIDATES (backend -> configs),
shape_class(shape), apply(backend, config) (a context manager that makes the op's launches use
the config) and make_call(backend, shape, dtype) (a timed forward+backward step)."""

from __future__ import annotations

import functools
import importlib
import json
import os
import time
from pathlib import Path
from typing import Optional

import torch

from . import backends


def cache_path() -> Path:
    root = os.environ.get("FUSEDATTN_CACHE_DIR")
    if root is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = os.path.join(xdg, "fusedattn")
    return Path(root) / "tuning.json"


def _key(op: str, backend: str, device_name: str, dtype: torch.dtype, shape_class: str) -> str:
    return f"{op}|{backend}|{device_name}|{str(dtype).replace('torch.', '')}|{shape_class}"


@functools.lru_cache(maxsize=None)
def _table(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


@functools.lru_cache(maxsize=None)
def _device_name(index: int) -> str:
    return torch.cuda.get_device_name(index)


def lookup(op: str, backend: str, device: torch.device, dtype: torch.dtype,
           shape_class: str) -> Optional[dict]:
    """The cached winning config for a call, or None (then the op's defaults apply). Read once
    per process; cheap after that."""
    if device.type != "cuda":
        return None
    entry = _table(str(cache_path())).get(
        _key(op, backend, _device_name(device.index or 0), dtype, shape_class))
    return entry["config"] if entry else None


def _store(entries: dict) -> Path:
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    table = dict(_table(str(path)))
    table.update(entries)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=1, sort_keys=True))
    tmp.replace(path)
    _table.cache_clear()
    return path


def _time_us(call, reps: int = 20) -> float:
    import triton.testing
    return 1e3 * triton.testing.do_bench(call, warmup=5, rep=reps, return_mode="median")


def tune(ops=None, shape_set: str = "spec", dtypes=(torch.bfloat16,), log=print) -> dict:
    """Times every candidate of every op's tunable backends at the op's shapes; returns and
    caches the winners."""
    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA GPU: `python -m fusedattn tune` times kernels on the GPU it "
                           "runs on, and there is none here")
    device = torch.device("cuda", torch.cuda.current_device())
    winners = {}
    for op in ops or backends.ops():
        try:
            hooks = importlib.import_module(f"fusedattn.ops.{op}.tuning")
        except ModuleNotFoundError:
            continue
        harness = importlib.import_module(f"fusedattn.ops.{op}.benchmarks")
        for backend, candidates in hooks.CANDIDATES.items():
            if backend not in backends.available_backends(device, op):
                log(f"{op} {backend}: unavailable here, not tuned")
                continue
            for dtype in dtypes:
                for shape in harness.SHAPE_SETS[shape_set]:
                    call = hooks.make_call(backend, shape, dtype, device)
                    default_us = _time_us(call)
                    best, best_us = None, default_us
                    for config in candidates:
                        try:
                            with hooks.apply(backend, config):
                                us = _time_us(call)
                        except Exception as exc:  # noqa: BLE001 -- a config that fails loses
                            log(f"  {op} {backend} {shape.label} {config}: failed ({exc})")
                            continue
                        if us < best_us:
                            best, best_us = config, us
                    cls = hooks.shape_class(shape)
                    key = _key(op, backend, _device_name(device.index), dtype, cls)
                    previous = winners.get(key)
                    if best is not None and (previous is None or best_us < previous["us"]):
                        winners[key] = {"config": best, "us": round(best_us, 2),
                                        "default_us": round(default_us, 2), "shape": shape.label,
                                        "date": time.strftime("%Y-%m-%d")}
                    log(f"{op} {backend} {str(dtype)[6:]} {shape.label} ({cls}): default "
                        f"{default_us:.1f} us, best {best_us:.1f} us "
                        f"{'(default)' if best is None else best}")
    path = _store(winners)
    log(f"wrote {len(winners)} winners to {path}")
    return winners
