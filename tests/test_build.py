"""What a build contains (build_info), and the runtime checks of it against the GPU and torch."""

import pytest
import torch

import fusedattn
from fusedattn._build import cuda_arch_unsupported, torch_mismatch


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


def test_torch_version_mismatch_names_both_versions():
    msg = torch_mismatch({"torch": "2.11.0"})
    assert msg is None if torch.__version__.startswith("2.11.0") else (
        "built against torch 2.11.0" in msg and torch.__version__.split("+")[0] in msg)
    assert torch_mismatch({"torch": torch.__version__.split("+")[0]}) is None
