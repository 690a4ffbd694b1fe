"""Strict, declarative key maps from a source state dict to a jaxgan model (all source keys used, all leaves filled).

A key map is a list of `KeyRule`s. Each rule fully matches source keys by regular expression and names the
target leaf (a dotted path in the model's params or buffers) or `None` for constants that are checked and
dropped (e.g. FIR filter buffers). `fill_model` applies the rules and refuses to guess: every source key must be
consumed by exactly one rule, every target leaf must be filled once with the right shape, and the error lists
all leftovers at once.
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
