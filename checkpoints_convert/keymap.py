"""Strict, declarative key maps from a source state dict to a jaxgan model (all source keys used, all leaves filled).

A key map is a list of `KeyRule`s. Each rule fully matches source keys by regular expression and names the
target leaf (a dotted path in the model's params or buffers) or `None` for constants that are checked and
dropped (e.g. FIR filter buffers). `fill_model` applies the rules and refuses to guess: every source key must be
consumed by exactly one rule, every target leaf must be filled once with the right shape, and the error lists
all leftovers at once.

Maps that must also run backwards (the StyleGAN2 generators, which `checkpoints_convert.export` writes in the
official layouts) are declared instead as a list of `KeyPair`s built from the model config: one pair per official
key, naming its jaxgan leaf and the official shape (a reshape either way), or the constant an official network
holds there. `map_pairs` reads an official state dict with them, `unmap_pairs` writes one, in declaration order:
both directions come from the one list, so names and layouts cannot drift apart.
"""

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np
from flax import nnx

from jaxgan.nn.split import SplitModel


class ConversionError(ValueError):
    """The source does not map onto the target model (unknown, missing or mismatched tensors, bad config)."""


def _identity(array: np.ndarray) -> np.ndarray:
    return array


@dataclasses.dataclass(frozen=True)
class KeyRule:
    source: str  # regular expression, matched against the whole source key
    target: str | Callable[[re.Match], str] | None  # template using \1-style groups, a function of the match, or None
    transform: Callable[[np.ndarray], np.ndarray] = _identity
    check: Callable[[np.ndarray], bool] | None = None  # for target=None: the constant must pass this check
    describe: str = ""  # what `check` expects, for the error message

    def target_for(self, match: re.Match) -> str | None:
        if self.target is None:
            return None
        return self.target(match) if callable(self.target) else match.expand(self.target)


def map_keys(source: Mapping[str, np.ndarray], rules: Sequence[KeyRule]) -> dict[str, np.ndarray]:
    """Apply `rules` to every source key; returns {target path: array}. Raises ConversionError listing problems."""
    mapped: dict[str, np.ndarray] = {}
    unmatched, ambiguous, failed_checks, duplicates = [], [], [], []
    for key, value in source.items():
        hits = [(rule, m) for rule in rules if (m := re.fullmatch(rule.source, key))]
        if not hits:
            unmatched.append(key)
            continue
        if len(hits) > 1:
            ambiguous.append(key)
            continue
        rule, match = hits[0]
        array = np.asarray(value)
        target = rule.target_for(match)
        if target is None:
            if rule.check is not None and not rule.check(array):
                failed_checks.append(f"{key} ({rule.describe or 'unexpected value'})")
            continue
        if target in mapped:
            duplicates.append(target)
        mapped[target] = rule.transform(array)
    problems = []
    if unmatched:
        problems.append(f"unknown source keys: {', '.join(sorted(unmatched))}")
    if ambiguous:
        problems.append(f"source keys matched by several rules: {', '.join(sorted(ambiguous))}")
    if failed_checks:
        problems.append(f"unsupported constant buffers: {', '.join(sorted(failed_checks))}")
    if duplicates:
        problems.append(f"target leaves written twice: {', '.join(sorted(set(duplicates)))}")
    if problems:
        raise ConversionError("; ".join(problems))
    return mapped


def _flat_paths(state) -> dict[str, tuple]:
    return {".".join(str(p) for p in path): path for path, _ in nnx.to_flat_state(state)}


def fill_model(abstract: SplitModel, tensors: Mapping[str, np.ndarray]) -> SplitModel:
    """Put `tensors` ({dotted target path: array}) into an abstract model; every leaf filled, every tensor used."""
    problems = []
    filled = {}
    for part in ("params", "buffers"):
        state = getattr(abstract, part)
        flat = nnx.to_flat_state(state)
        values = []
        for path, variable in flat:
            name = ".".join(str(p) for p in path)
            if name not in tensors:
                problems.append(f"missing {name}")
                values.append((path, variable))
                continue
            array = np.asarray(tensors[name], dtype=np.float32)
            if array.shape != tuple(variable.shape):
                problems.append(f"{name} has shape {array.shape}, the model expects {tuple(variable.shape)}")
            values.append((path, variable.replace(jax.numpy.asarray(array))))
        filled[part] = values
    known = set(_flat_paths(abstract.params)) | set(_flat_paths(abstract.buffers))
    extra = sorted(set(tensors) - known)
    if extra:
        problems.append(f"tensors with no place in the model: {', '.join(extra)}")
    if problems:
        raise ConversionError("; ".join(problems))
    return SplitModel(abstract.graphdef, nnx.from_flat_state(filled["params"]), nnx.from_flat_state(filled["buffers"]))


# ----------------------------------------------------------------------------------------------------------------
# Two-way maps: one KeyPair per official key


def _same_shape(shape: tuple) -> tuple:
    return shape


@dataclasses.dataclass(frozen=True)
class KeyPair:
    source: str  # the official state-dict key
    target: str | None  # the jaxgan leaf (dotted path), or None for a constant buffer
    official_shape: Callable[[tuple], tuple] = _same_shape  # the jaxgan leaf's shape -> the official tensor's shape
    constant: np.ndarray | None = None  # target None: the value every official network holds under `source`
    describe: str = ""  # what `constant` is, for the error message


def leaf_shapes(model: SplitModel) -> dict[str, tuple]:
    """{dotted leaf path: shape} of a (possibly abstract) model's params and buffers."""
    return {".".join(str(p) for p in path): tuple(variable.shape)
            for part in (model.params, model.buffers) for path, variable in nnx.to_flat_state(part)}


def map_pairs(source: Mapping[str, np.ndarray], pairs: Sequence[KeyPair],
              shapes: Mapping[str, tuple]) -> dict[str, np.ndarray]:
    """An official state dict -> {jaxgan leaf: array} by `pairs`; `shapes` are the jaxgan leaves' shapes
    (`leaf_shapes` of the abstract model). Every source key must be declared and every declared key present."""
    by_source = {pair.source: pair for pair in pairs}
    unknown = sorted(set(source) - set(by_source))
    missing = sorted(set(by_source) - set(source))
    failed_checks, bad_shapes = [], []
    mapped: dict[str, np.ndarray] = {}
    for key, value in source.items():
        pair = by_source.get(key)
        if pair is None:
            continue
        array = np.asarray(value)
        if pair.target is None:
            if array.shape != pair.constant.shape or not np.allclose(array, pair.constant):
                failed_checks.append(f"{key} ({pair.describe or 'unexpected value'})")
            continue
        expected = pair.official_shape(shapes[pair.target])
        if array.shape != expected:
            bad_shapes.append(f"{key} has shape {array.shape}, expected {expected}")
            continue
        mapped[pair.target] = array.reshape(shapes[pair.target])
    problems = []
    if unknown:
        problems.append(f"unknown source keys: {', '.join(unknown)}")
    if missing:
        problems.append(f"missing source keys: {', '.join(missing)}")
    if failed_checks:
        problems.append(f"unsupported constant buffers: {', '.join(sorted(failed_checks))}")
    if bad_shapes:
        problems.append("; ".join(bad_shapes))
    if problems:
        raise ConversionError("; ".join(problems))
    return mapped


def unmap_pairs(model: SplitModel, pairs: Sequence[KeyPair], *, outside: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """A model -> its official state dict ({key: float32 numpy array}, in the order of `pairs`). Every leaf must be
    named by exactly one pair, except the leaves in `outside` (stored elsewhere by the official format)."""
    values = {".".join(str(p) for p in path): variable[...]
              for part in (model.params, model.buffers) for path, variable in nnx.to_flat_state(part)}
    targets = [pair.target for pair in pairs if pair.target is not None]
    uncovered = sorted(set(values) - set(targets) - set(outside))
    unknown = sorted(set(targets) - set(values))
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if uncovered or unknown or twice:
        raise ConversionError("; ".join(filter(None, [
            uncovered and f"leaves the official layout has no place for: {', '.join(uncovered)}",
            unknown and f"declared leaves the model lacks: {', '.join(unknown)}",
            twice and f"leaves declared twice: {', '.join(twice)}"])))
    state = {}
    for pair in pairs:
        if pair.target is None:
            state[pair.source] = np.array(pair.constant, np.float32)
        else:
            array = np.asarray(values[pair.target], np.float32)
            state[pair.source] = array.reshape(pair.official_shape(array.shape))
    return state
