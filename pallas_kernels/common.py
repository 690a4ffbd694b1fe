"""What every kernel of this package shares: power-of-two sizes, the Triton compiler parameters, output types.

- `next_pow2`: the Triton lowering only loads and stores blocks whose sizes are powers of two (jax 0.10.2,
  `jax/_src/pallas/triton/lowering.py`), so tiles, windows and channel counts are rounded up with it and the
  arrays zero-padded to match.
- `triton_params`: the `compiler_params` that make `pl.pallas_call` lower through Triton on a GPU rather than
  the default Mosaic GPU backend (`jax.experimental.pallas.triton.CompilerParams`); the kernels pass None in
  interpret mode.
- `output_struct`: a `pallas_call` output's shape and dtype, varying over the mesh axes its inputs vary over, as
  `pallas_call` requires inside `jax.shard_map` (where jaxgan's batched programs run).

It imports no kernel; from jaxgan only the leaf `jaxgan.ops.varying` (the varying-axes lookup it shares with
the custom-VJP ops).
"""

import jax

from jaxgan.ops.varying import varying_axes


def next_pow2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(0, (int(n) - 1).bit_length())


def triton_params():
    """Compiler params that select the Triton lowering on a GPU (None in interpret mode)."""
    from jax.experimental.pallas import triton as pltriton
    return pltriton.CompilerParams(num_warps=4, num_stages=2)


def output_struct(shape, dtype, *inputs):
    """`jax.ShapeDtypeStruct(shape, dtype)` for a `pallas_call` output that varies over the mesh axes any of
    `inputs` varies over. Inside `jax.shard_map` with `check_vma` (jaxgan.parallel's batched programs: DragGAN,
    EditGAN, inversion, serving) pallas_call needs the output's manual axis type; elsewhere it is empty."""
    from jax.sharding import ManualAxisType
    varying = frozenset().union(*(varying_axes(x) for x in inputs))
    return jax.ShapeDtypeStruct(shape, dtype, manual_axis_type=ManualAxisType(varying=varying))
