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
