"""Variable kinds: trainable parameters are `nnx.Param`; everything stored but not trained is a `Buffer`.

Splitting a model with `nnx.split(model, nnx.Param, Buffer)` gives (graphdef, params, buffers), mirroring
PyTorch's `named_parameters()` / `named_buffers()` (e.g. `mapping.w_avg`, `synthesis.b8.conv0.noise_const`).
"""

from flax import nnx


class Buffer(nnx.Variable):
    """A stored, non-trainable tensor (a PyTorch buffer)."""
