"""What a build contains (build_info), and the runtime checks of it against the GPU and torch."""

import warnings

import pytest
import torch

import fusedattn
from fusedattn._library import cuda_arch_unsupported, torch_mismatch


def test_build_info_describes_the_build():
    info = fusedattn.build_info()
    assert info["torch"] == torch.__version__.split("+")[0]
    assert isinstance(info["cuda_built"], bool)
    for key in ("cuda_archs_sass", "cuda_archs_ptx", "git_revision", "flags", "cxx", "version"):
        assert key in info, key
    if info["cuda_built"]:
        assert info["cuda_archs_sass"] and info["torch_cuda"] == torch.version.cuda


@pytest.mark.parametrize("capability, sass, ptx, runs", [
    ((9, 0), ["8.0", "9.0"], [], True),
    ((8, 6), ["8.0"], [], True),          # sm_80 cubins run on 8.6 and 8.9
    ((8, 9), ["8.0", "9.0"], [], True),
    ((7, 5), ["8.0", "9.0"], [], False),  # Turing: nothing runs
    ((10, 0), ["8.0", "9.0"], [], False),  # Blackwell without PTX
    ((10, 0), ["8.0", "9.0"], ["9.0"], True),  # ... with compute_90 PTX, JIT-compiled
    ((9, 0), ["8.0"], ["8.0"], True),
    ((8, 0), ["9.0"], ["9.0"], False),    # PTX never runs on an older GPU
    ((10, 0), ["9.0a"], [], False),       # arch-specific cubins run on exactly that arch
    ((9, 0), ["9.0a"], [], True),
    ((12, 0), ["10.0f"], [], False),
])
def test_cuda_arch_compatibility(capability, sass, ptx, runs):
    why = cuda_arch_unsupported(capability, sass, ptx)
    assert (why is None) == runs
    if not runs:
        assert f"sm_{capability[0]}{capability[1]}" in why and "FUSEDATTN_CUDA_ARCHS" in why


def test_torch_version_mismatch_names_both_versions(monkeypatch):
    info = {"torch": "2.14.1", "torch_min": "2.10"}
    for running in ("2.10.0", "2.11.0+cu130", "2.14.1", "2.15.0"):
        monkeypatch.setattr(torch, "__version__", running)
        assert torch_mismatch(info) is None, running  # the stable ABI serves them all
    monkeypatch.setattr(torch, "__version__", "2.9.1+cu128")
    msg = torch_mismatch(info)
    assert "built against torch 2.14.1" in msg and "torch 2.9.1 is running" in msg
    assert ">= 2.10" in msg


@pytest.fixture
def simulated_gpu(monkeypatch):
    """A CUDA build for sm_80 and sm_90 on a machine whose GPU is (by default) a Turing, with
    the Triton backend able to run anything: what auto and backend='cuda' do about it."""
    import dataclasses

    from fusedattn import _library, backends

    if _library.load_error():
        pytest.skip(_library.load_error())
    info = dict(fusedattn.build_info(), cuda_built=True, cuda_archs_sass=["8.0", "9.0"],
                cuda_archs_ptx=[])
    monkeypatch.setattr(_library, "build_info", lambda: info)
    monkeypatch.setattr(torch._C, "_dispatch_has_kernel_for_dispatch_key", lambda op, key: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    capability = {"value": (7, 5)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability["value"])
    registered = backends._OPS["attention_pool"].backends
    monkeypatch.setitem(registered, "triton", dataclasses.replace(  # a Triton that can run
        registered["triton"], why_not=lambda device: None))
    for cache in ("_WARNED", "_CHOSEN", "_RUN", "_RUN_FOR"):  # keep stand-ins out of later tests
        monkeypatch.setattr(backends, cache, type(getattr(backends, cache))())
    return capability


def _choose(backend, device, dtype, maps):
    from fusedattn import backends

    return backends.choose("attention_pool", backend, device, dtype,
                           backends.shape_class("attention_pool", (maps,)))


def test_auto_falls_back_with_one_warning_when_the_gpu_arch_is_not_built(simulated_gpu):
    from fusedattn import backends

    device = torch.device("cuda", 0)
    with pytest.warns(RuntimeWarning, match=r"cuda backend cannot run on cuda:0: .*8\.0;9\.0 SASS.*sm_75"):
        assert _choose("auto", device, torch.bfloat16, 8) == "triton"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per device, not on every call
        assert _choose("auto", device, torch.bfloat16, 16) == "triton"
    simulated_gpu["value"] = (9, 0)
    backends._CHOSEN.clear()  # a different GPU: decide again
    backends._RUN_FOR.clear()
    assert _choose("auto", device, torch.bfloat16, 8) == "cuda"


def test_cuda_backend_names_the_gpu_arch_and_the_built_archs(simulated_gpu):
    with pytest.raises(fusedattn.BackendUnavailableError) as info:
        _choose("cuda", torch.device("cuda", 0), torch.bfloat16, 8)
    assert "sm_75" in str(info.value) and "8.0;9.0" in str(info.value)
