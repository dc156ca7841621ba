"""Triton kernels compiled ahead of time for sm_90 without a GPU, with exactly the
specialization a real launch gets: the launch's arguments (CPU tensors of the call's shapes and
strides stand in for the GPU's; the caching allocator's pointers are 16-byte aligned, and so are
these) go through Triton's own binder, which marks unit strides, integers divisible by 16 and
aligned pointers as real launches do. Needs a process without TRITON_INTERPRET."""

from __future__ import annotations

import hashlib
from pathlib import Path

TARGET = ("cuda", 90, 32)


def _backend():
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    target = GPUTarget(*TARGET)
    return target, make_backend(target)


def specialize(launch) -> tuple:
    """(kernel name, specialization hash) and what compiling it needs."""
    from triton.runtime.jit import create_function_from_signature
    fn = launch.kernel
    target, backend = _backend()
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound_args, specialization, options = binder(*launch.args, **launch.kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, launch.kwargs, bound_args,
                                                          specialization, options)
    text = repr((fn.__name__, sorted(signature.items()), sorted(constexprs.items(), key=str),
                 sorted(attrs.items(), key=str), sorted(options.__dict__.items(), key=str)))
    key = (fn.__name__, hashlib.sha256(text.encode()).hexdigest()[:16])
    return key, (fn, target, signature, constexprs, attrs, options)


def compile_specialized(key, packed, cache: Path) -> tuple[Path, dict]:
    """The kernel's cubin (its SASS is read for many kernels at once: sass.read_cubins) and
    its launch metadata (threads, shared memory)."""
    from triton.compiler import ASTSource, compile as triton_compile
    fn, target, signature, constexprs, attrs, options = packed
    compiled = triton_compile(ASTSource(fn, signature, constexprs, attrs), target=target,
                              options=options.__dict__)
    cache.mkdir(parents=True, exist_ok=True)
    cubin = cache / f"triton.{key[0]}.{key[1]}.cubin"
    cubin.write_bytes(compiled.asm["cubin"])
    meta = compiled.metadata
    return cubin, {"threads": meta.num_warps * 32, "shared_bytes": int(meta.shared)}
