// The torch.library namespace the ops of this build register in: `fusedattn` for the extension
// (fusedattn._C), `fusedattn_emulated` for the CUDA kernels built against the CPU emulation of
// the CUDA execution model (fusedattn._C_emulated, csrc/common/emulation), which registers the
// same schemas for CPU tensors. Every op's ops.cpp and host code use this macro, never the name.
#pragma once

#if defined(FUSEDATTN_CUDA_EMULATION)
#define FUSEDATTN_LIBRARY fusedattn_emulated
#define FUSEDATTN_MODULE_NAME "_C_emulated"
#define FUSEDATTN_MODULE_INIT PyInit__C_emulated
#else
#define FUSEDATTN_LIBRARY fusedattn
#define FUSEDATTN_MODULE_NAME "_C"
#define FUSEDATTN_MODULE_INIT PyInit__C
#endif
