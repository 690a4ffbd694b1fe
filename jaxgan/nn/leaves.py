"""A named subset of a model's leaves: select, name and replace the leaves whose path matches a rule.

A leaf's name is its path in the `SplitModel` pytree with flax's `value` wrappers dropped, dotted: the official
state-dict name ('synthesis.b8.conv0.weight', 'synthesis.b8.conv0.noise_const'). A rule is a predicate on the
tuple of name parts. The three functions flatten the tree the same way, so `selected_leaves` and `selected_names`
are in the same order and `replace_selected` takes a list in that order: PTI tunes the synthesis parameters this
way, the projector optimises the noise buffers.
"""

from typing import Callable

import jax

Rule = Callable[[tuple[str, ...]], bool]


def name_parts(path) -> tuple[str, ...]:
    """('synthesis', 'b8', 'conv0', 'weight') of a `tree_flatten_with_path` path."""
    def part(entry):
        return str(getattr(entry, "key", getattr(entry, "name", getattr(entry, "idx", entry))))
    return tuple(p for p in map(part, path) if p != "value")


def selected_leaves(tree, rule: Rule) -> list:
    """The leaves of `tree` whose name parts satisfy `rule`, in flattening order."""
    return [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0] if rule(name_parts(path))]


def selected_names(tree, rule: Rule) -> list[str]:
    """The dotted names of `selected_leaves(tree, rule)`, in the same order."""
    return [".".join(parts) for parts in (name_parts(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0])
            if rule(parts)]


def replace_selected(tree, rule: Rule, new: list):
    """`tree` with its selected leaves replaced, in order, by `new` (functionally); the others are kept."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    selected = [rule(name_parts(path)) for path, _ in leaves]
    if sum(selected) != len(new):
        raise ValueError(f"{len(new)} replacements for {sum(selected)} selected leaves")
    it = iter(new)
    return jax.tree_util.tree_unflatten(treedef, [next(it) if chosen else leaf
                                                  for chosen, (_, leaf) in zip(selected, leaves)])
