"""fusedattn.nn: the modules, the losses, convert, autocast, and the torchvision model."""

import copy

import pytest
import torch
from torch import nn

import fusedattn
import fusedattn.nn as fnn
from fusedattn.ops.attention_pool.testing import make_inputs
from helpers import HAS_GPU


def _head_pair(**kwargs):
    torch.manual_seed(0)
    ref = fnn.ReferencePartialFaceHead(24, 3, 16, **kwargs)
    fused = fnn.PartialFaceHead(24, 3, 16, **kwargs)
    fused.load_state_dict(ref.state_dict())
    return ref, fused


def test_attentional_pooling_module_matches_functional():
    f, a = make_inputs(2, 9, 4, 5, 3)
    for module in (fnn.AttentionalPooling(pool="mean"), fnn.ReferenceAttentionalPooling("mean")):
        out = module(f, a)
        ref = fusedattn.attention_pool(f, a, pool="mean", backend="reference")
        for x, y in zip(out, ref):
            torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4)
    assert fnn.AttentionalPooling(compute_diversity=False)(f, a).diversity is None
    with pytest.raises(ValueError, match="pool must be"):
        fnn.AttentionalPooling(pool="max")
    with pytest.raises(ValueError, match="backend must be"):
        fnn.AttentionalPooling(backend="tpu")


def test_partial_face_head_shapes_and_aggregate():
    ref, fused = _head_pair()
    x = torch.randn(5, 24, 6, 7)
    out = fused(x)
    assert out.embedding.shape == (5, 16) and out.map_embeddings.shape == (5, 3, 16)
    assert out.importance.shape == (5, 3) and out.diversity.shape == (5,)
    assert out.attention.shape == (5, 3, 6, 7) and (out.attention >= 0).all()
    torch.testing.assert_close(out.embedding, out.map_embeddings.mean(1))
    # The batched Aggregate equals K separate fully connected layers.
    pooled = fusedattn.attention_pool(x, out.attention).pooled
    for k in range(3):
        torch.testing.assert_close(out.map_embeddings[:, k],
                                   pooled[:, k] @ fused.weight[k] + fused.bias[k],
                                   atol=1e-5, rtol=1e-4)


def test_head_with_a_separate_attention_input():
    head = fnn.PartialFaceHead(24, 4, 8, attn_in_channels=5)
    out = head(torch.randn(2, 24, 6, 6), torch.randn(2, 5, 6, 6))
    assert out.attention.shape == (2, 4, 6, 6)
    with pytest.raises(ValueError, match="spatial size mismatch"):
        head(torch.randn(2, 24, 6, 6), torch.randn(2, 5, 3, 3))


def test_fused_and_reference_heads_agree_with_losses_and_gradients():
    ref, fused = _head_pair()
    crit = fnn.PartialFaceLoss(16, 7, diversity_weight=0.5, l2_weight=1e-3)
    x = torch.randn(4, 24, 5, 5)
    y = torch.tensor([0, 3, 6, 3])
    losses, grads = [], []
    for head in (ref, fused):
        head.zero_grad()
        loss = crit(head(x), y, head.parameters())
        loss.total.backward()
        losses.append(loss)
        grads.append([p.grad.clone() for p in head.parameters()])
    for a, b in zip(*losses):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    total = losses[0]
    torch.testing.assert_close(total.total, total.cross_entropy + 0.5 * total.diversity
                               + 1e-3 * total.l2)


def test_weighted_cross_entropy_is_the_importance_weighted_sum():
    wce = fnn.WeightedCrossEntropyLoss(6, 4)
    e = torch.randn(3, 2, 6)
    s = torch.softmax(torch.randn(3, 2), dim=1).requires_grad_()
    y = torch.tensor([1, 0, 3])
    loss = wce(e, s, y)
    expected = sum(s[b, k] * nn.functional.cross_entropy(wce.classifier(e[b, k]), y[b])
                   for b in range(3) for k in range(2)) / 3
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0  # the importance learns from the CE


def test_convert_swaps_reference_pooling_in_place():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Conv2d(3, 24, 3, padding=1)
            self.head = fnn.ReferencePartialFaceHead(24, 3, 16)
            self.extra = nn.ModuleList([fnn.ReferenceAttentionalPooling("mean", False)])

        def forward(self, x):
            return self.head(self.backbone(x))

    model = Model()
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(2, 3, 6, 6)
    expected = model(x)
    assert fnn.convert(model) is model
    assert type(model.head.pooling) is fnn.AttentionalPooling
    assert type(model.extra[0]) is fnn.AttentionalPooling
    assert model.extra[0].pool == "mean" and model.extra[0].compute_diversity is False
    assert model.state_dict().keys() == before.keys()
    for x1, x2 in zip(model(x), expected):
        torch.testing.assert_close(x1, x2, atol=1e-5, rtol=1e-4)
    assert isinstance(fnn.convert(fnn.ReferenceAttentionalPooling()), fnn.AttentionalPooling)


def test_hand_edited_einsum_forward_matches():
    """The README's "hand edit": a typical einsum attention-pooling forward and its fused
    replacement give the same numbers."""
    f, a = make_inputs(2, 8, 5, 5, 3)

    def einsum_forward(features, logits):
        sig = torch.sigmoid(logits.flatten(2))
        s = torch.softmax(sig.mean(-1), dim=-1)
        v = torch.einsum("bkn,bcn->bkc", s.unsqueeze(-1) * sig, features.flatten(2))
        p = torch.softmax(logits.flatten(2), dim=-1)
        div = 1 - (s.unsqueeze(-1) * p).max(dim=1).values.sum(-1)
        return v, s, div

    for x, y in zip(einsum_forward(f, a), fusedattn.attention_pool(f, a)):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_autocast_cpu_bfloat16(backend):
    head = fnn.PartialFaceHead(24, 3, 16, backend=backend)
    x = torch.randn(2, 24, 5, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pooled, s, div = fusedattn.attention_pool(x, torch.randn(2, 3, 5, 5), backend=backend)
        out = head(x)
    assert pooled.dtype == torch.bfloat16
    assert s.dtype == torch.float32 and div.dtype == torch.float32
    assert out.importance.dtype == torch.float32 and out.diversity.dtype == torch.float32
    assert out.embedding.dtype == torch.bfloat16
    out.embedding.float().sum().backward()
    assert head.attention[0].weight.grad is not None


def test_autocast_keeps_the_float32_accumulation():
    """Under autocast the backend runs with autocast off: the same result as on the cast inputs
    outside autocast (not a bfloat16 matmul inside the reference)."""
    f, a = make_inputs(2, 64, 8, 8, 4, dtype=torch.bfloat16)
    for backend in ("reference", "cpu"):
        plain = fusedattn.attention_pool(f, a, backend=backend)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cast = fusedattn.attention_pool(f.float(), a.float(), backend=backend)
        for x, y in zip(cast, plain):
            torch.testing.assert_close(x, y, atol=0, rtol=0)


def test_meta_tensors_run_the_reference():
    f, a = torch.empty(2, 8, 4, 4, device="meta"), torch.empty(2, 3, 4, 4, device="meta")
    out = fusedattn.attention_pool(f, a)
    assert out.pooled.shape == (2, 3, 8) and out.pooled.device.type == "meta"


def test_autocast_mixed_input_dtypes_are_cast():
    f = torch.randn(2, 8, 4, 4)                       # float32 features
    a = torch.randn(2, 3, 4, 4, dtype=torch.bfloat16)  # bfloat16 logits (from an autocast conv)
    with pytest.raises(TypeError, match="same dtype"):
        fusedattn.attention_pool(f, a)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fusedattn.attention_pool(f, a).pooled.dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):  # float64 is left alone, as autocast does
        assert fusedattn.attention_pool(f.double(), a.double()).pooled.dtype == torch.float64


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_gpu(dtype):
    head = fnn.PartialFaceHead(64, 4, 32).cuda()
    x = torch.randn(8, 64, 7, 7, device="cuda")
    with torch.autocast("cuda", dtype=dtype):
        out = head(x)
    assert out.embedding.dtype == dtype and out.importance.dtype == torch.float32
    out.embedding.float().sum().backward()


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")
def test_head_on_gpu_matches_cpu():
    ref, fused = _head_pair()
    x = torch.randn(4, 24, 5, 5)
    expected = ref(x)
    out = fused.cuda()(x.cuda())
    for a, b in zip(out, expected):
        torch.testing.assert_close(a.cpu(), b, atol=1e-4, rtol=1e-3)


def test_partial_face_resnet50():
    models = pytest.importorskip("fusedattn.models")
    if models.TORCHVISION_ERROR is not None:
        pytest.skip(f"torchvision unavailable: {models.TORCHVISION_ERROR}")
    model = models.partial_face_resnet50(num_maps=4, embed_dim=32)
    feats = model.backbone(torch.randn(1, 3, 160, 160))
    assert feats.shape == (1, 1024, 20, 20)  # the paper's 20x20x1024 feature map
    out = model.head(feats)
    assert out.embedding.shape == (1, 32) and out.importance.shape == (1, 4)
