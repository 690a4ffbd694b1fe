"""Generation sharded over 4 simulated CPU devices equals one device, for any problem count."""

import jax
import numpy as np
import pytest

from jaxgan import parallel, sampling
from tests.helpers import GENERATORS, generator_fixture


def test_four_devices_are_simulated():
    assert jax.local_device_count() == 4, "tests/conftest.py sets JAX_NUM_CPU_DEVICES=4 before JAX starts"


@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_four_devices_equal_one_device(noise_mode):
    G, data, _ = generator_fixture(GENERATORS[1])  # conditional 32 px: small and labelled
    z, c = np.concatenate([data["in/z"]] * 2)[:7], np.concatenate([data["in/c"]] * 2)[:7]  # 7: needs padding
    options = sampling.GenerationOptions(truncation_psi=0.7, noise_mode=noise_mode)
    keys = jax.random.split(jax.random.key(5), 7)
    four = sampling.generate_images(G, z=z, c=c, keys=keys, options=options, batch_size=1,
                                    mesh=parallel.data_mesh())
    one = sampling.generate_images(G, z=z, c=c, keys=keys, options=options, batch_size=3,
                                   mesh=parallel.data_mesh(jax.local_devices()[:1]))
    assert four.shape == (7, 32, 32, 3)
    np.testing.assert_allclose(four, one, atol=1e-5)


def test_pad_problems_repeats_the_last_row():
    padded, n = parallel.pad_problems({"a": np.arange(5)}, 4)
    assert n == 5 and padded["a"].tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    with pytest.raises(ValueError, match="disagree"):
        parallel.pad_problems({"a": np.zeros(3), "b": np.zeros(4)}, 2)


def test_repeated_generation_reuses_the_compiled_function():
    G, data, _ = generator_fixture(GENERATORS[1])
    options, mesh = sampling.GenerationOptions(), parallel.data_mesh()
    sampling.generate_images(G, z=data["in/z"], c=data["in/c"], options=options, mesh=mesh)
    fn = sampling.make_generator_fn(options, mesh)
    sampling.generate_images(G, z=data["in/z"], c=data["in/c"], options=options, mesh=mesh)
    assert sampling.make_generator_fn(options, mesh) is fn  # same jit object, so its compilation cache is reused


def test_map_chunks_pads_shards_and_drops_the_padding():
    calls = []

    def per_device(scale, problems):
        return {"y": problems["x"] * scale, "i": problems["i"]}
    program = parallel.shard_problems(per_device, parallel.data_mesh())

    def counted(shared, chunk):
        calls.append(chunk["x"].shape[0])
        return program(shared, chunk)
    x = np.arange(11, dtype=np.float32)
    chunks = []
    out = parallel.map_chunks(counted, np.float32(2), {"x": x, "i": np.arange(11)}, batch_size=2,
                              mesh=parallel.data_mesh(), on_chunk=chunks.append)
    assert calls == [8, 8] and chunks == [8, 3]  # 2 per device on 4 devices; the last chunk padded to the same shape
    np.testing.assert_array_equal(out["y"], 2 * x)
    np.testing.assert_array_equal(out["i"], np.arange(11))
    small = parallel.map_chunks(counted, np.float32(1), {"x": x[:3], "i": np.arange(3)}, batch_size=8,
                                mesh=parallel.data_mesh())
    assert calls[-1] == 4 and small["y"].tolist() == [0, 1, 2]  # never more than the count rounded to the devices
    with pytest.raises(ValueError, match="no problems"):
        parallel.map_chunks(counted, 1, {"x": x[:0]}, batch_size=1, mesh=parallel.data_mesh())


def test_mesh_for_uses_no_more_devices_than_problems():
    assert parallel.mesh_for(1).devices.size == 1
    assert parallel.mesh_for(3).devices.size == 3
    assert parallel.mesh_for(100).devices.size == jax.local_device_count()
    assert parallel.mesh_for(5, jax.local_devices()[:2]).devices.size == 2
