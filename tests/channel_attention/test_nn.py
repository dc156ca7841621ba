"""fusedattn.nn.ChannelAttention, convert on torchvision's and timm's SE models (random weights,
nothing downloaded): every SE block replaced, parameters and state_dict keys kept, outputs and
gradients equal to the unconverted model's; the report of what was skipped and why."""

import copy

import pytest
import torch
from torch import nn

import fusedattn
import fusedattn.nn as fnn
from fusedattn.ops.channel_attention.reference import channel_attention as reference_op

torchvision = pytest.importorskip("torchvision")
SqueezeExcitation = torchvision.ops.SqueezeExcitation


def _equal_training_step(model, converted, images, atol=2e-5, rtol=2e-4):
    """Outputs and every parameter's gradient of the two models agree (float32)."""
    outs = []
    for m in (model, converted):
        m.zero_grad()
        out = m(images)
        out.square().mean().backward()
        outs.append((out, {n: p.grad for n, p in m.named_parameters()}))
    torch.testing.assert_close(outs[0][0], outs[1][0], atol=atol, rtol=rtol)
    assert outs[0][1].keys() == outs[1][1].keys()
    for name, grad in outs[0][1].items():
        torch.testing.assert_close(grad, outs[1][1][name], atol=atol, rtol=rtol, msg=name)


@pytest.mark.parametrize("name, count, size", [("efficientnet_b0", 16, 32),
                                               ("mobilenet_v3_small", 9, 32),
                                               ("regnet_y_400mf", 16, 32)])
def test_convert_torchvision_models(name, count, size):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)().train()
    converted = copy.deepcopy(model)
    keys = model.state_dict().keys()
    report = fnn.ConvertReport()
    assert fnn.convert(converted, report=report) is converted
    assert len(report.replaced) == count and not report.skipped, str(report)
    assert not any(isinstance(m, SqueezeExcitation) for m in converted.modules())
    assert sum(isinstance(m, fnn.ChannelAttention) for m in converted.modules()) == count
    assert converted.state_dict().keys() == keys
    # Stochastic depth and dropout off: the same computation in both models.
    model.eval(), converted.eval()
    _equal_training_step(model, converted, torch.randn(2, 3, size, size))


def test_convert_timm_seresnet18_and_efficientnet():
    timm = pytest.importorskip("timm")
    for name, count in (("seresnet18", 8), ("efficientnet_b0", 16)):
        torch.manual_seed(0)
        model = timm.create_model(name).eval()
        converted = copy.deepcopy(model)
        report = fnn.ConvertReport()
        fnn.convert(converted, report=report)
        assert len(report.replaced) == count and not report.skipped, str(report)
        assert converted.state_dict().keys() == model.state_dict().keys()
        _equal_training_step(model, converted, torch.randn(2, 3, 32, 32))


def test_timm_configurations_the_op_does_not_compute_are_skipped():
    timm = pytest.importorskip("timm")
    from timm.layers.squeeze_excite import SEModule

    model = nn.Sequential(SEModule(32, add_maxpool=True), SEModule(32, norm_layer=nn.BatchNorm2d),
                          SEModule(32, act_layer=nn.GELU), SEModule(32))
    report = fnn.ConvertReport()
    fnn.convert(model, report=report)
    reasons = [why for _, _, why in report.skipped]
    assert len(reasons) == 3 and "add_maxpool=True" in reasons[0]
    assert "norm layer (BatchNorm2d)" in reasons[1] and "activation GELU" in reasons[2]
    assert [name for name, _, _ in report.replaced] == ["3"]
    assert isinstance(model[3], fnn.ChannelAttention) and isinstance(model[0], SEModule)
    assert "skipped  0: timm.layers.squeeze_excite.SEModule" in str(report)


def test_torchvision_squeeze_excitation_state_dict_loads_into_the_module():
    se = SqueezeExcitation(24, 6, activation=nn.SiLU, scale_activation=nn.Hardsigmoid)
    fused = fnn.ChannelAttention(24, 6, activation="silu", gate="hardsigmoid")
    fused.load_state_dict(se.state_dict())
    x = torch.randn(3, 24, 5, 7)
    torch.testing.assert_close(fused(x), se(x), atol=1e-6, rtol=1e-5)
    skipped = SqueezeExcitation(24, 6, activation=nn.GELU)
    report = fnn.ConvertReport()
    assert fnn.convert(skipped, report=report) is skipped
    assert "activation GELU is not ReLU or SiLU" in str(report)


def test_reference_module_and_convert():
    ref = fnn.ReferenceChannelAttention(16, 4, activation="silu", bias=False)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), ref)
    x = torch.randn(2, 3, 9, 9)
    expected = model(x)
    fnn.convert(model)
    assert type(model[1]) is fnn.ChannelAttention and model[1].fc1 is ref.fc1
    torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="gate must be 'sigmoid' or 'hardsigmoid'"):
        fnn.ChannelAttention(8, 2, gate="softmax")
    with pytest.raises(ValueError, match="channels and squeeze_channels must be >= 1"):
        fnn.ChannelAttention(8, 0)


def test_ir_se50_reads_its_se_shapes_and_converts():
    from fusedattn.ops.channel_attention.benchmarks import model_shapes

    shapes = {(s.C, s.H, s.W, s.R) for s in model_shapes("ir_se50")}
    assert shapes == {(64, 56, 56, 4), (128, 28, 28, 8), (256, 14, 14, 16), (512, 7, 7, 32)}
    import fusedattn.models

    model = fusedattn.models.ir_se50().eval()
    report = fnn.ConvertReport()
    fnn.convert(model, report=report)
    assert len(report.replaced) == 24


def test_autocast_behaves_like_the_convolutions():
    se = fnn.ChannelAttention(16, 4)
    x = torch.randn(2, 16, 5, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = se(x)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert se.fc1.weight.grad.dtype == torch.float32
    plain = fusedattn.channel_attention(x.bfloat16(), *(p.bfloat16() for p in (
        se.fc1.weight, se.fc1.bias, se.fc2.weight, se.fc2.bias)))
    torch.testing.assert_close(y, plain, atol=0, rtol=0)


def test_meta_tensors_run_the_reference():
    x = torch.empty(2, 8, 4, 4, device="meta")
    params = [torch.empty(s, device="meta") for s in ((2, 8), (2,), (8, 2), (8,))]
    assert fusedattn.channel_attention(x, *params).shape == x.shape
    assert reference_op(x, *params, "relu", "sigmoid").device.type == "meta"
