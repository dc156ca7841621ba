#!/usr/bin/env bash
# Builds a wheel for chosen GPU archs on a machine with no GPU and verifies it the way a user
# would, then checks the sdist. Run by CI (.ci/run), after `make test` set up .venv:
#   tools/check_wheel.sh                 # FUSEDATTN_CUDA_ARCHS defaults to "8.0;9.0"
# 1. pip wheel (compile only), then auditwheel repair to a manylinux tag (torch's and CUDA's own
# libraries are left out: torch provides them at run time), 2. cuobjdump: exactly those SASS
# targets (and PTX only where "+PTX" asked for it), 3. a fresh venv beside the existing torch:
# install, import, build_info, a cpu-backend smoke test, 4. the sdist holds csrc/ and docs/ and
# builds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ARCHS=${FUSEDATTN_CUDA_ARCHS:-"8.0;9.0"}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda-13.0}
export CUDA_HOME PATH="$(dirname "$PY"):$PATH"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== wheel for $ARCHS"
start=$(date +%s)
# (Wheels leave out the CPU emulation of the CUDA kernels, which `make` builds for the tests.)
FUSEDATTN_CUDA_ARCHS="$ARCHS" FORCE_CUDA=1 FUSEDATTN_BUILD_EMULATION=0 "$PY" -m pip wheel -q --no-build-isolation --no-deps \
  -w "$WORK/raw" .
echo "built $(basename "$(ls "$WORK"/raw/fusedattn-*.whl)") in $(( $(date +%s) - start )) s"
# Package indexes take manylinux wheels only. torch's libraries (libc10, libtorch*) and the CUDA
# runtime come with torch; grafting copies of them into the wheel would load twice.
"$PY" -m auditwheel repair -w "$WORK/dist" --plat "${MANYLINUX:-manylinux_2_34_x86_64}" \
  --exclude 'libc10*.so' --exclude 'libtorch*.so' --exclude 'libcudart.so*' \
  "$WORK"/raw/fusedattn-*.whl > "$WORK/auditwheel.log" 2>&1 || { cat "$WORK/auditwheel.log"; exit 1; }
WHEEL=$(ls "$WORK"/dist/fusedattn-*.whl)
echo "repaired: $(basename "$WHEEL")"
case "$(basename "$WHEEL")" in
  *+cu*torch*-cp310-abi3-manylinux_*_x86_64.whl) ;;
  *) echo "unexpected wheel name (want +cuXYZtorchA.B, cp310-abi3, a manylinux tag)"; exit 1 ;;
esac
if "$PY" -m zipfile -l "$WHEEL" | grep -q "fusedattn.libs/"; then
  echo "auditwheel grafted libraries into the wheel:"; "$PY" -m zipfile -l "$WHEEL" | grep "fusedattn.libs/"; exit 1
fi

if "$PY" -m zipfile -l "$WHEEL" | grep -q "_C_emulated"; then
  echo "the wheel carries the CUDA emulation build (fusedattn/_C_emulated)"; exit 1
fi

echo "== SASS and PTX in the library"
# cuobjdump: the toolkit's, else the one Triton ships (this machine's toolkit has none).
CUOBJDUMP=$(command -v "$CUDA_HOME/bin/cuobjdump" || "$PY" -c \
  'import triton, os; print(os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump"))')
"$PY" -m zipfile -e "$WHEEL" "$WORK/unpacked"
SO=$(ls "$WORK"/unpacked/fusedattn/_C*.so)
sass=$("$CUOBJDUMP" --list-elf "$SO" | grep -o 'sm_[0-9]*[af]\?' | sort -u | tr '\n' ' ')
ptx=$("$CUOBJDUMP" --list-ptx "$SO" 2>/dev/null | grep -o 'sm_[0-9]*[af]\?' | sort -u | tr '\n' ' ' || true)
want_sass=$(echo "$ARCHS" | tr ';' '\n' | sed 's/+PTX//; s/\.//; s/^/sm_/' | sort -u | tr '\n' ' ')
want_ptx=$(echo "$ARCHS" | tr ';' '\n' | grep '+PTX' | sed 's/+PTX//; s/\.//; s/^/sm_/' | sort -u | tr '\n' ' ' || true)
echo "SASS: $sass(expected $want_sass)  PTX: ${ptx:-none} (expected ${want_ptx:-none})"
[ "$sass" = "$want_sass" ] && [ "$ptx" = "$want_ptx" ] || { echo "wrong GPU code in the wheel"; exit 1; }

echo "== a fresh venv beside the existing torch"
"$PY" -m venv "$WORK/venv"
# torch and its dependencies from the build environment's site-packages (the venv's and, for a
# --system-site-packages venv, the base interpreter's); fusedattn only from the wheel. A path
# added by a .pth line is searched after the venv's own site-packages, and the .pth files in it
# (such as an editable install's finder) are not run.
VSITE=$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$PY" -c 'import sys; print("\n".join(p for p in sys.path if p.endswith("-packages")))' \
  > "$VSITE/torch_beside.pth"
"$WORK/venv/bin/python" -m pip install -q --no-deps "$WHEEL"
(cd "$WORK" && "$WORK/venv/bin/python" - "$ARCHS" <<'PYEOF'
import sys
import torch
import fusedattn

assert fusedattn.__file__.startswith(sys.prefix), fusedattn.__file__  # the wheel, not the tree
info = fusedattn.build_info()
archs = sorted({a.replace("+PTX", "") for a in sys.argv[1].split(";")})
assert info["cuda_built"] and info["cuda_archs_sass"] == archs, info
assert fusedattn.available_backends("cpu")[0] == "cpu", fusedattn.backend_status("cpu")
f, a = torch.randn(2, 17, 7, 9), torch.randn(2, 5, 7, 9)
fused = fusedattn.attention_pool(f, a, backend="cpu")
ref = fusedattn.attention_pool(f, a, backend="reference")
for x, y in zip(fused, ref):
    torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4)
print(f"import, build_info ({info['version']}, SASS {info['cuda_archs_sass']}) and the cpu "
      "backend: ok")
PYEOF
)

echo "== sdist"
"$PY" setup.py -q sdist -d "$WORK/sdist" > /dev/null 2>&1
SDIST=$(ls "$WORK"/sdist/fusedattn-*.tar.gz)
listing=$(tar -tzf "$SDIST")
for f in csrc/module.cpp csrc/common/math.h csrc/common/cpu/vec.h csrc/attention_pool/ops.cpp \
         csrc/attention_pool/cuda/forward.cu csrc/attention_pool/cpu/kernels_impl.h \
         docs/attention_pool.md; do
  grep -q "/$f\$" <<< "$listing" || { echo "sdist lacks $f"; exit 1; }
done
if grep -q "_build_info.json" <<< "$listing"; then echo "sdist carries a build stamp"; exit 1; fi
FUSEDATTN_SKIP_CUDA_BUILD=1 "$PY" -m pip wheel -q --no-build-isolation --no-deps -w "$WORK/sdist-dist" "$SDIST"
echo "sdist $(basename "$SDIST") holds csrc/ and builds: $(basename "$(ls "$WORK"/sdist-dist/*.whl)")"
