"""Pallas kernels for jaxgan hot ops (issue 7); each mirrors a jnp reference in jaxgan/ops with the same signature
plus `interpret`, and is selected with `implementation="pallas"` on the public op (jaxgan/ops/implementation.py).

- `upfirdn2d`: polyphase up / down / pad with any small separable or 2-D filter (reference
  jaxgan.ops.upfirdn2d_xla).
- `epilogue`: SynthesisLayer's [FIR] * demod + noise + bias, act * gain, clamp in one pass (reference
  jaxgan.ops.epilogue_xla).
- `point_tracking`: DragGAN's windowed nearest-neighbour search (reference jaxgan.ops.point_tracking).
- `common`: the power-of-two rounding and Triton compiler parameters the kernels share.

A kernel imports only leaf modules: the planning helpers (jaxgan.ops.upfirdn2d_plan, jaxgan.ops.activations,
`common`) and, for its `custom_vjp` backward, its XLA reference; never a public dispatching op. Only the
dispatchers import this package, lazily.

Written for the Triton GPU lowering and tested only in interpret mode on CPU: never lowered or run on a GPU, and
their GPU performance is unmeasured, so they are not the default anywhere (scripts/results/README.md says what
remains to be measured).
"""
