"""Options of the pytest-benchmark suite.

    pytest benchmarks --benchmark-only                       # the default set for this machine
    pytest benchmarks --fa-shapes spec --fa-dtype bfloat16   # SPEC.md's six shapes (GPU)
    pytest benchmarks --fa-shapes "32,1024,20x20,8" --fa-impls cpu,eager
"""

import pytest
import torch

from fusedattn import benchmarking as bm

SHAPE_SETS = {
    "spec": bm.SPEC_SHAPES,
    "cpu": bm.CPU_SHAPES,
    # `make test`: tiny, so the suite runs in seconds and cannot rot.
    "quick": (bm.Shape(2, 32, 7, 9, 5),),
}


def pytest_addoption(parser):
    g = parser.getgroup("fusedattn")
    g.addoption("--fa-device", default=None, help="cuda or cpu (default: cuda if present)")
    g.addoption("--fa-shapes", default=None,
                help="spec, cpu, quick or 'B,C,HxW,K;...' (default: spec on GPU, cpu on CPU)")
    g.addoption("--fa-dtype", default=None, action="append",
                help="float32, bfloat16, float16 (repeatable; default: bfloat16 and float32 on "
                     "GPU, float32 on CPU)")
    g.addoption("--fa-layout", default="contiguous", choices=["contiguous", "channels_last"])
    g.addoption("--fa-impls", default=None,
                help="comma-separated backends/baselines (default: every available fused "
                     "backend, reference, eager and torch.compile)")
    g.addoption("--fa-modes", default=",".join(bm.MODES))


def _device(config):
    name = config.getoption("--fa-device") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def pytest_generate_tests(metafunc):
    config = metafunc.config
    device = _device(config)
    if "shape" in metafunc.fixturenames:
        spec = config.getoption("--fa-shapes") or ("spec" if device.type == "cuda" else "cpu")
        shapes = SHAPE_SETS.get(spec) or tuple(bm.Shape.parse(s) for s in spec.split(";"))
        metafunc.parametrize("shape", shapes, ids=[s.label for s in shapes])
    if "dtype" in metafunc.fixturenames:
        names = config.getoption("--fa-dtype") or (
            ["bfloat16", "float32"] if device.type == "cuda" else ["float32"])
        metafunc.parametrize("dtype", [getattr(torch, n) for n in names], ids=names)
    if "impl" in metafunc.fixturenames:
        impls = config.getoption("--fa-impls")
        impls = impls.split(",") if impls else bm.implementations(device) + ["reference"]
        metafunc.parametrize("impl", impls)
    if "mode" in metafunc.fixturenames:
        metafunc.parametrize("mode", config.getoption("--fa-modes").split(","))


@pytest.fixture(scope="session")
def device(request):
    return _device(request.config)


@pytest.fixture(scope="session")
def layout(request):
    return request.config.getoption("--fa-layout")


@pytest.fixture(scope="session")
def copy_bandwidth(device):
    """Bytes/s of a device-to-device copy in this run: the ceiling the floor is measured by."""
    return bm.copy_bandwidth(device)


@pytest.fixture(scope="session")
def environment(device):
    return bm.environment(device)
