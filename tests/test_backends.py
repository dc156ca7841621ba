"""The op-neutral backend registry (fusedattn.backends) and library loading
(fusedattn._library): typed backends, selection and its cache, and what happens when the
compiled extension cannot be loaded."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import fusedattn
from fusedattn import backends

ROOT = Path(__file__).resolve().parents[1]


def test_every_backend_is_typed():
    for op in backends.ops():
        for name, b in backends.backends(op).items():
            assert isinstance(b, backends.Backend) and b.op == op and b.name == name
            assert name in backends.BACKEND_NAMES and b.dtypes
            assert b.devices is None or all(isinstance(d, str) for d in b.devices)


def test_a_backend_states_its_own_limits_and_dtypes():
    b = backends.Backend("attention_pool", "cuda", ("cuda",), (torch.float32,), load=lambda: None,
                         limits={"attention maps": 4})
    cuda = torch.device("cuda")
    assert b.unavailable_reason(cuda, torch.float32, {"attention maps": 4}) is None
    assert "at most 4 attention maps; these have 5" in b.unavailable_reason(
        cuda, torch.float32, {"attention maps": 5})
    assert "supports float32, got float64" in b.unavailable_reason(cuda, torch.float64)
    assert "runs cuda tensors, got a tensor on cpu" in b.unavailable_reason(torch.device("cpu"))


def test_shape_class_is_what_the_choice_depends_on(monkeypatch):
    # Every attention_pool backend takes any K: one class for all calls.
    assert backends._OPS["attention_pool"].limits == ()
    assert backends.shape_class("attention_pool", (1000,)) == 0
    # An op whose backends limit a size: the class says which limits a call exceeds.
    monkeypatch.setattr(backends._OPS["attention_pool"], "limits", ((0, 64),))
    assert backends.shape_class("attention_pool", (64,)) == 0
    assert backends.shape_class("attention_pool", (65,)) == 1


def test_selection_is_cached_per_kind_of_input():
    f, a = torch.randn(2, 5, 3, 3), torch.randn(2, 2, 3, 3)
    fusedattn.attention_pool(f, a)
    assert ("attention_pool", "auto", f.device, f.dtype, 0) in backends._CHOSEN
    assert ("attention_pool", "auto", f.device, f.dtype, (2,)) in backends._RUN_FOR
    assert backends._CHOSEN[("attention_pool", "auto", f.device, f.dtype, 0)] == \
        fusedattn.available_backends("cpu")[0]


def test_import_leaves_torch_dynamo_alone():
    """Importing fusedattn and calling it must not import torch._dynamo (2 s here): selection
    is marked constant for torch.compile without importing it."""
    code = ("import sys, torch, fusedattn; "
            "fusedattn.attention_pool(torch.randn(1, 3, 2, 2), torch.randn(1, 2, 2, 2)); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.strip()
    assert out == "False"


MISSING_EXTENSION = textwrap.dedent("""
    import importlib.abc, sys, warnings

    class NoCompiledExtension(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "fusedattn._C":
                raise ImportError("simulated: no fusedattn._C")
            return None

    sys.meta_path.insert(0, NoCompiledExtension())
    import torch, fusedattn
    f, a = torch.randn(2, 5, 3, 4), torch.randn(2, 3, 3, 4)
    out = fusedattn.attention_pool(f, a)  # auto: the reference
    ref = fusedattn.attention_pool(f, a, backend="reference")
    assert all(torch.equal(x, y) for x, y in zip(out, ref))
    status = fusedattn.backend_status("cpu")
    assert "simulated: no fusedattn._C" in status["cpu"], status
    assert fusedattn.available_backends("cpu")[0] == "reference"
    try:
        fusedattn.attention_pool(f, a, backend="cpu")
    except fusedattn.BackendUnavailableError as exc:
        assert "simulated: no fusedattn._C" in str(exc)
    else:
        raise AssertionError("backend='cpu' ran without its extension")
    print("fallback ok")
""")


def test_a_missing_extension_falls_back_to_the_reference():
    """Without a loadable fusedattn._C (an old torch, a missing compiler or library) every op
    still runs: "auto" picks the reference, and backend="cpu" says why it cannot run."""
    proc = subprocess.run([sys.executable, "-c", MISSING_EXTENSION], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and "fallback ok" in proc.stdout, proc.stderr[-3000:]
