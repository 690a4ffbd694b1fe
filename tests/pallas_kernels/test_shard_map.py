"""The kernels inside `jaxgan.parallel`'s `jax.shard_map` (check_vma on), where DragGAN, EditGAN, inversion and
serving run them: a `pallas_call` output there must say which mesh axes it varies over
(`pallas_kernels.common.output_struct`), and the epilogue's custom_vjp must return cotangents of its arguments'
types (a replicated bias, a per-device activation).

On CPU only tracing is checked: Pallas interpret mode cannot lower inside shard_map in jax 0.10.2 (the
interpreter's dynamic slices mix per-device refs with replicated grid indices). On a GPU (`pytest -m gpu`) the
sharded program is compiled, run and compared with XLA's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxgan import parallel
from jaxgan.ops.epilogue import fused_epilogue
from jaxgan.ops.point_tracking import nearest_in_window
from jaxgan.ops.upfirdn2d import setup_filter, upsample2d

FIR = setup_filter([1, 3, 3, 1])


def sharded_program(implementation: str, size: int, channels: int):
    """(jit(shard_map(per_device)), its inputs): per problem, the value and x-gradient of an up-layer epilogue plus
    an upsample2d, and the tracking of two points; the bias is shared (replicated), the rest per problem."""
    mesh = parallel.data_mesh()
    n = mesh.devices.size
    k = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(k[0], (n, size + 1, size + 1, channels))
    dcoefs = jax.random.uniform(k[1], (n, channels))
    feat = jax.random.normal(k[2], (n, size, size, channels))
    points = jax.random.randint(k[3], (n, 2, 2), 0, size)
    bias = jnp.linspace(-1, 1, channels)

    def per_device(shared, batched):
        (bias,) = shared
        x, dcoefs, feat, points = batched

        def loss(x, d):
            y = fused_epilogue(x[None], bias, dcoefs=d[None], resample_filter=FIR, fir_padding=1, fir_gain=4,
                               act="lrelu", clamp=256.0, implementation=implementation)
            return jnp.sum(y ** 2) + jnp.sum(upsample2d(x[None], FIR, implementation=implementation) ** 2)
        value, grad = jax.vmap(jax.value_and_grad(loss))(x, dcoefs)
        refs = jax.vmap(lambda f, p: f[p[:, 0], p[:, 1]])(feat, points)
        tracked = jax.vmap(lambda f, r, p: nearest_in_window(f, r, p, 3, implementation=implementation))(
            feat, refs, points)
        return value, grad, tracked

    program = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(parallel.DATA_AXIS)),
                                    out_specs=P(parallel.DATA_AXIS)))
    split = NamedSharding(mesh, P(parallel.DATA_AXIS))
    return program, (parallel.replicate((bias,), mesh), jax.device_put((x, dcoefs, feat, points), split))


def test_kernels_trace_inside_shard_map():
    program, inputs = sharded_program("pallas", 16, 8)
    traced = program.trace(*inputs)  # raised before output_struct: "manual_axis_type ... must not be None"
    value, grad, tracked = traced.out_info
    assert value.shape == (4,) and grad.shape == (4, 17, 17, 8) and tracked.shape == (4, 2, 2)


@pytest.mark.gpu
@pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a GPU (the kernels are lowered, not interpreted)")
def test_kernels_inside_shard_map_on_gpu():
    program, inputs = sharded_program("pallas", 128, 128)
    want_program, _ = sharded_program("xla", 128, 128)
    with jax.default_matmul_precision("highest"):
        got = jax.device_get(program(*inputs))
        want = jax.device_get(want_program(*inputs))
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(got[2], want[2])
