"""Random initialisation of a conv net's `weight` / `bias` leaves by PyTorch's rules, from two random draws.

Building a Flax module eagerly draws every parameter with its own random call, and on CPU each distinct shape costs
a compiled threefry kernel (seconds for a network with dozens of layers). Here the parameters of an abstract model
(`nnx.eval_shape`) are cut from one normal and one uniform draw, compiled once:

* weights: N(0, weight_std) (pix2pixHD's `weights_init`: 0.02), or with weight_std None torch's default
  kaiming-uniform, U(-1/sqrt(fan_in), 1/sqrt(fan_in));
* biases: torch's default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the fan-in of their layer's weight.

fan_in = weight.shape[1] * prod(kernel) as torch computes it, which for ConvTranspose2d (weight [I, O, k, k]) is
O * k * k. Every leaf must be a `weight` or a `bias` beside a `weight`.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def _fan_in(shape) -> int:
    return int(shape[1] * np.prod(shape[2:])) if len(shape) > 1 else int(shape[0])


def torch_style_params(abstract_params: nnx.State, key, weight_std: float | None = None) -> nnx.State:
    """Concrete params for the abstract `abstract_params` (shapes only), deterministic in `key`."""
    flat = list(nnx.to_flat_state(abstract_params))
    shapes = {path: tuple(v.shape) for path, v in flat}
    bounds = []
    for path, _ in flat:
        weight_path = path[:-1] + ("weight",)
        if path[-1] not in ("weight", "bias") or weight_path not in shapes:
            raise ValueError(f"torch-style init knows weight and bias leaves only, not {'.'.join(map(str, path))}")
        bounds.append(1 / np.sqrt(_fan_in(shapes[weight_path])))
    sizes = [int(np.prod(shapes[path])) for path, _ in flat]

    @jax.jit
    def draw(key):
        normal_key, uniform_key = jax.random.split(key)
        total = sum(sizes)
        normal = jax.random.normal(normal_key, (total,), jnp.float32)
        uniform = jax.random.uniform(uniform_key, (total,), jnp.float32, -1.0, 1.0)
        out, start = [], 0
        for (path, _), size, bound in zip(flat, sizes, bounds):
            if path[-1] == "weight" and weight_std is not None:
                value = weight_std * normal[start:start + size]
            else:
                value = bound * uniform[start:start + size]
            out.append(value.reshape(shapes[path]))
            start += size
        return out

    values = draw(key)
    return nnx.from_flat_state([(path, variable.replace(value)) for (path, variable), value in zip(flat, values)])
