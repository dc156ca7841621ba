// The bare Python module whose import loads this library: the ops register themselves with
// torch.library from static initializers (each op's ops.cpp and STABLE_TORCH_LIBRARY_IMPLs), so
// the module needs no functions (pytorch/extension-cpp's pattern). The only exported symbol:
// the library builds with -fvisibility=hidden.
#include <Python.h>

#include "common/library.h"

extern "C" {
PyMODINIT_FUNC FUSEDATTN_MODULE_INIT(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, FUSEDATTN_MODULE_NAME,
      "fusedattn's compiled ops (see torch.ops.fusedattn)", -1, NULL,
  };
  return PyModule_Create(&module_def);
}
}
