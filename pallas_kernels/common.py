"""What every kernel of this package shares: power-of-two sizes and the Triton compiler parameters.

- `next_pow2`: the Triton lowering only loads and stores blocks whose sizes are powers of two (jax 0.10.2,
  `jax/_src/pallas/triton/lowering.py`), so tiles, windows and channel counts are rounded up with it and the
  arrays zero-padded to match.
- `triton_params`: the `compiler_params` that make `pl.pallas_call` lower through Triton on a GPU rather than
  the default Mosaic GPU backend (`jax.experimental.pallas.triton.CompilerParams`); the kernels pass None in
  interpret mode.

A leaf module: it imports no kernel and nothing from jaxgan.
"""


def next_pow2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(0, (int(n) - 1).bit_length())


def triton_params():
    """Compiler params that select the Triton lowering on a GPU (None in interpret mode)."""
    from jax.experimental.pallas import triton as pltriton
    return pltriton.CompilerParams(num_warps=4, num_stages=2)
