"""One folder per fused op (public function, validation, backends, fakes and autograd, nn
modules, testing and benchmarking harnesses), beside the package's op-neutral modules."""
