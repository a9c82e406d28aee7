"""How a pipeline runs on this machine: runtime options, residency, quantization, memory plans."""
