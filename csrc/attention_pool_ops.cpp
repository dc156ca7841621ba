// The op schemas, shared by the CPU and CUDA implementations, and the bare `_C` Python module
// whose import loads this library. Fake kernels and autograd are registered from Python
// (fusedattn/_op_contract.py), as torch.library recommends, so torch.compile sees plain ops.
#include <Python.h>
#include <torch/csrc/stable/library.h>

STABLE_TORCH_LIBRARY(fusedattn, m) {
  // features (B, C, N), logits (B, K, N), any strides. Returns pooled (B, K, C) in the features'
  // dtype; importance (B, K), diversity (B,) ((0,) if not computed) and the per-(b, k)
  // log-sum-exp of the logits that the backward needs, in float32 (float64 for float64 inputs).
  m.def(
      "attention_pool_fwd(Tensor features, Tensor logits, str pool, bool compute_diversity)"
      " -> (Tensor pooled, Tensor importance, Tensor diversity, Tensor logsumexp)");
  // One pass over the features: grad_features (laid out like features) and grad_logits.
  // grad_diversity None means the loss did not use the diversity term.
  m.def(
      "attention_pool_bwd(Tensor grad_pooled, Tensor grad_importance, Tensor? grad_diversity,"
      " Tensor features, Tensor logits, Tensor importance, Tensor logsumexp, str pool)"
      " -> (Tensor grad_features, Tensor grad_logits)");
}

extern "C" {
// A module with no functions: importing fusedattn._C runs the static registrations above.
// (The only exported symbol: the library builds with -fvisibility=hidden.)
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", "fusedattn's compiled ops (see torch.ops.fusedattn)", -1, NULL,
  };
  return PyModule_Create(&module_def);
}
}
