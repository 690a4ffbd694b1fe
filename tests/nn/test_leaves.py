"""Selecting, naming and replacing a model's leaves by a rule on their names (`jaxgan.nn.leaves`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import stylegan2
from jaxgan.nn.leaves import name_parts, replace_selected, selected_leaves, selected_names


def is_weight(parts):
    return parts[-1] == "weight"


def test_names_are_the_state_dict_names_in_leaf_order():
    tree = {"a": {"weight": jnp.ones(2), "bias": jnp.zeros(3)}, "b": [jnp.ones(1), {"weight": jnp.ones(4)}]}
    assert selected_names(tree, is_weight) == ["a.weight", "b.1.weight"]
    assert [x.shape for x in selected_leaves(tree, is_weight)] == [(2,), (4,)]
    paths = [name_parts(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    assert ("a", "bias") in paths and ("b", "0") in paths


def test_replace_selected_changes_only_the_selected_leaves_and_checks_the_count():
    tree = {"a": {"weight": jnp.ones(2), "bias": jnp.zeros(3)}, "b": {"weight": jnp.ones(4)}}
    new = replace_selected(tree, is_weight, [jnp.full(2, 5.0), jnp.full(4, 7.0)])
    np.testing.assert_array_equal(new["a"]["weight"], [5, 5])
    np.testing.assert_array_equal(new["b"]["weight"], [7] * 4)
    assert new["a"]["bias"] is tree["a"]["bias"]
    with pytest.raises(ValueError, match="1 replacements for 2 selected leaves"):
        replace_selected(tree, is_weight, [jnp.ones(2)])


def test_flax_value_wrappers_are_not_part_of_a_generator_leaf_name():
    G = stylegan2.init_generator(stylegan2.GeneratorConfig(z_dim=8, c_dim=0, w_dim=8, img_resolution=8,
                                                        img_channels=3, channels=(8, 4), mapping_layers=2),
                                  jax.random.key(0))
    names = selected_names(G.params, lambda parts: parts[0] == "synthesis")
    assert names and all(n.startswith("synthesis.") and ".value" not in n for n in names)
    assert "synthesis.b4.const" in names
