"""Pallas kernels for jaxgan hot ops (issue 7); each mirrors a jnp reference in jaxgan/ops with the same signature
plus `interpret`, and is selected with `implementation="pallas"` (jaxgan/ops/implementation.py).

- `upfirdn2d`: polyphase up / down / pad with any small separable or 2-D filter (reference jaxgan.ops.upfirdn2d).
- `epilogue`: SynthesisLayer's [FIR] * demod + noise + bias, act * gain, clamp in one pass (jaxgan.ops.epilogue).
- `point_tracking`: DragGAN's windowed nearest-neighbour search (jaxgan.ops.point_tracking).

Written for the Triton GPU lowering and tested only in interpret mode on CPU: never lowered or run on a GPU, and
their GPU performance is unmeasured, so they are not the default anywhere (scripts/results/README.md says what
remains to be measured).
"""
