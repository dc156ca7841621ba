"""channel_attention's input validation, shared by every backend (made of fusedattn._validation's
helpers): bad input becomes a ValueError/TypeError naming the argument and what was seen."""

from __future__ import annotations

import torch

from ..._validation import (SUPPORTED_DTYPES, accumulate_dtype, check_choice, check_same_device,
                            check_tensor, prod)

ACTIVATIONS = ("relu", "silu")
GATES = ("sigmoid", "hardsigmoid")

_DTYPES = frozenset(SUPPORTED_DTYPES)
_STRIDED = torch.strided
_Tensor = torch.Tensor
_PARAMETER_TYPES = (torch.Tensor, torch.nn.Parameter)  # the weights are usually Parameters


def _matrix_ok(w, rows, cols) -> bool:
    shape = w.shape
    return (len(shape) == 2 or (len(shape) == 4 and shape[2] == 1 and shape[3] == 1)) \
        and shape[0] == rows and shape[1] == cols


def validate_inputs(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation="relu",
                    gate="sigmoid"):
    """Checks the public arguments of channel_attention: x (B, C, H, W) or (B, C, N);
    fc1_weight (R, C) or (R, C, 1, 1), fc2_weight (C, R) or (C, R, 1, 1), biases (R,), (C,) or
    None, all of one dtype: x's, or float32 for 16-bit x (float64 x: float64).

    The common case is accepted after a few attribute reads (this runs on every call); anything
    else goes through the checks that name the argument and what was seen."""
    if (type(x) is _Tensor and type(fc1_weight) in _PARAMETER_TYPES
            and type(fc2_weight) in _PARAMETER_TYPES
            and (activation == "relu" or activation == "silu")
            and (gate == "sigmoid" or gate == "hardsigmoid")):
        shape, dtype, wdtype = x.shape, x.dtype, fc1_weight.dtype
        dim = len(shape)
        C = shape[1] if dim >= 2 else 0
        R = fc1_weight.shape[0] if fc1_weight.dim() else 0
        device = x.device
        if (dtype in _DTYPES and (dim == 4 or dim == 3) and R and shape[2]
                and (dim == 3 or shape[3]) and x.layout is _STRIDED
                and (wdtype is dtype or wdtype is accumulate_dtype(dtype))
                and fc2_weight.dtype is wdtype and _matrix_ok(fc1_weight, R, C)
                and _matrix_ok(fc2_weight, C, R)
                and fc1_weight.device == device and fc2_weight.device == device
                and fc1_weight.layout is _STRIDED and fc2_weight.layout is _STRIDED
                and (fc1_bias is None or (type(fc1_bias) in _PARAMETER_TYPES and fc1_bias.dtype is wdtype
                                          and fc1_bias.shape == (R,)
                                          and fc1_bias.device == device))
                and (fc2_bias is None or (type(fc2_bias) in _PARAMETER_TYPES and fc2_bias.dtype is wdtype
                                          and fc2_bias.shape == (C,)
                                          and fc2_bias.device == device))):
            return
    _validate_slowly(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate)


def _check_parameter(name, t, ranks_layouts, x, wdtype, expected_shapes):
    check_tensor(name, t, ranks_layouts)
    check_same_device(name, t, "x", x)
    if tuple(t.shape) not in expected_shapes:
        options = " or ".join(str(s) for s in expected_shapes)
        raise ValueError(f"{name} must have shape {options}, got {tuple(t.shape)}")
    if t.dtype != wdtype:
        raise TypeError(f"{name} must have fc1_weight's dtype {wdtype}, got {t.dtype}")


def _validate_slowly(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate):
    check_tensor("x", x, ("(B, C, H, W)", "(B, C, N)"))
    check_tensor("fc1_weight", fc1_weight, ("(R, C, 1, 1)", "(R, C)"))
    if prod(x.shape[2:]) == 0:
        raise ValueError(f"x must have at least one pixel, got shape {tuple(x.shape)}")
    C = x.shape[1]
    R = fc1_weight.shape[0]
    if R == 0:
        raise ValueError(f"fc1_weight must have at least one squeeze channel (R >= 1), got "
                         f"shape {tuple(fc1_weight.shape)}")
    if not _matrix_ok(fc1_weight, R, C):
        raise ValueError(f"fc1_weight must have shape ({R}, {C}) or ({R}, {C}, 1, 1) for x with "
                         f"C={C} channels, got {tuple(fc1_weight.shape)}")
    acc = accumulate_dtype(x.dtype)
    if fc1_weight.dtype not in (x.dtype, acc):
        raise TypeError(f"fc1_weight must have x's dtype {x.dtype} or {acc}, got "
                        f"{fc1_weight.dtype}")
    check_same_device("fc1_weight", fc1_weight, "x", x)
    wdtype = fc1_weight.dtype
    _check_parameter("fc2_weight", fc2_weight, ("(C, R, 1, 1)", "(C, R)"), x, wdtype,
                     [(C, R), (C, R, 1, 1)])
    for name, bias, size, layout in (("fc1_bias", fc1_bias, R, "(R)"),
                                     ("fc2_bias", fc2_bias, C, "(C)")):
        if bias is not None:
            _check_parameter(name, bias, (layout,), x, wdtype, [(size,)])
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("gate", gate, GATES)
