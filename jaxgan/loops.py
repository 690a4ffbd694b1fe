"""Several optimisation steps inside one compiled program.

`scan_steps` is `lax.scan` over a step function with no per-step inputs. On the CPU backend the steps are traced
one after another instead (an unrolled loop): XLA:CPU runs convolutions inside a while loop far slower than the same
convolutions outside one (measured: 3 projector steps on the 64 px fixture generator took 9.5 s as a loop and
0.6 s unrolled), and a one-trip `lax.scan` is still a while loop. There the loop costs compile time instead. GPU
and TPU keep the rolled loop.
"""

import jax
import jax.numpy as jnp


def scan_steps(step, state, length: int):
    """Apply `state, out = step(state)` `length` times; returns (final state, outputs stacked on a new axis 0)."""
    if jax.default_backend() != "cpu":
        return jax.lax.scan(lambda carry, _: step(carry), state, None, length=length)
    outputs = []
    for _ in range(length):
        state, out = step(state)
        outputs.append(out)
    return state, jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *outputs)
