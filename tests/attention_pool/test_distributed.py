"""The fused head under DistributedDataParallel: 2 processes (gloo, CPU) on halves of a global
batch end with the same parameters as one process on the whole batch."""

import os
import socket
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import fusedattn.nn as fnn

STEPS, GLOBAL_BATCH = 4, 8


def _batches():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(GLOBAL_BATCH, 3, 6, 6, generator=g),
             torch.randint(5, (GLOBAL_BATCH,), generator=g)) for _ in range(STEPS)]


class _Trainee(nn.Module):
    """Backbone, head and loss: forward(x, y) -> the loss, so DDP wraps the whole step."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Conv2d(3, 16, 3, padding=1)
        self.head = fnn.PartialFaceHead(16, 3, 8)
        self.loss = fnn.PartialFaceLoss(8, 5, diversity_weight=0.5)

    def forward(self, x, y):
        return self.loss(self.head(self.backbone(x)), y).total


def _train(module, rank=0, world=1):
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    per_rank = GLOBAL_BATCH // world
    for x, y in _batches():
        part = slice(rank * per_rank, (rank + 1) * per_rank)
        opt.zero_grad()
        module(x[part], y[part]).backward()
        opt.step()
    return module


def _worker(rank, world, port, path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    ddp = nn.parallel.DistributedDataParallel(_Trainee())
    _train(ddp, rank, world)
    if rank == 0:
        torch.save(ddp.module.state_dict(), path)
    dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_matches_single_process():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ddp.pt")
        mp.spawn(_worker, args=(2, _free_port(), path), nprocs=2, join=True)
        ddp_state = torch.load(path)
    single = _train(_Trainee()).state_dict()
    assert ddp_state.keys() == single.keys()
    for name, value in single.items():
        torch.testing.assert_close(ddp_state[name], value, atol=1e-5, rtol=1e-4, msg=name)
    initial = _Trainee().state_dict()
    assert any(not torch.equal(value, initial[name]) for name, value in single.items())
