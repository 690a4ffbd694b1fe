"""jaxgan checkpoints: one orbax directory of pure-dict pytrees plus a JSON sidecar.

Follows the orbax-checkpoint docs ('Checkpointing PyTrees', 'Change sharding') and the Flax NNX guide 'Save and
load checkpoints': pure dicts (no nnx classes in the file), absolute paths,
restore with an abstract target carrying an explicit single-device sharding (so a checkpoint written on a GPU or
on several devices restores anywhere), and the async save awaited before the directory is published. A checkpoint
is written to a hidden temporary directory beside the destination and renamed when complete, so an interrupted
conversion never leaves a half-written checkpoint under the requested name.

Layout of `DST/`:
  jaxgan.json   {"format": "jaxgan-checkpoint", "format_version": 1, "models": {name: {"kind", "config"}}, ...meta}
  state/<name>/ one orbax pytree {"params": {...}, "buffers": {...}} per model, so each loads on its own
"""

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from jaxgan.files import atomic_directory, json_text
from jaxgan.models.kinds import GENERATOR_KINDS, MODEL_KINDS, canonical_kind, kind_named, kind_of
from jaxgan.nn.split import SplitModel

SIDECAR = "jaxgan.json"
STATE_DIR = "state"
FORMAT = "jaxgan-checkpoint"
FORMAT_VERSION = 1


class CheckpointFormatError(ValueError):
    """The directory is not a jaxgan checkpoint this version can read."""


class ModelNotFound(CheckpointFormatError):
    """The checkpoint holds no model of the kind asked for."""


def abstract_model(cfg) -> SplitModel:
    """The restore target (shapes and dtypes only) of a model with config `cfg`, whichever family it belongs to."""
    return kind_of(cfg).abstract_model(cfg)


def config_to_dict(cfg) -> dict:
    return {"kind": kind_of(cfg).name, "config": dataclasses.asdict(cfg)}


def config_from_dict(entry: dict):
    try:
        cls = kind_named(entry["kind"]).config_class
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in entry["config"].items()}
        unknown = set(values) - fields
        if unknown:
            raise CheckpointFormatError(f"unknown config fields for {entry['kind']}: {sorted(unknown)}")
        return cls(**values)
    except (KeyError, TypeError) as e:
        raise CheckpointFormatError(f"bad model entry in {SIDECAR}: {e}") from None


def process_checkpointer() -> ocp.StandardCheckpointer:
    """Orbax's checkpointer for this process alone. jaxgan's checkpoints hold host copies (every process of a
    multi-process job reads its own, and only process 0 writes), so no other process takes part in orbax's
    barriers: with the default options a save on process 0 alone would wait for the others forever."""
    only_me = ocp.options.MultiprocessingOptions(primary_host=jax.process_index(),
                                                 active_processes={jax.process_index()})
    return ocp.StandardCheckpointer(multiprocessing_options=only_me)


def save_checkpoint(path, models: dict[str, SplitModel], meta: dict | None = None, *, replace: bool = False) -> Path:
    """Write `models` ({name: SplitModel}) and `meta` (JSON-serialisable) to the new directory `path` (replacing an
    existing one, once the new one is complete, with `replace`)."""
    path = Path(path).resolve()
    sidecar = {"format": FORMAT, "format_version": FORMAT_VERSION,
               "models": {name: config_to_dict(m.config) for name, m in models.items()}, **(meta or {})}
    # Host copies: in a multi-process job orbax refuses to write a process-local jax.Array (it would wait for the
    # other processes' shards), and a checkpoint is one process's file either way.
    tree = {name: jax.tree.map(np.asarray, {"params": nnx.to_pure_dict(m.params),
                                            "buffers": nnx.to_pure_dict(m.buffers)})
            for name, m in models.items()}
    with atomic_directory(path, replace=replace) as tmp:
        with process_checkpointer() as checkpointer:
            for name, subtree in tree.items():
                checkpointer.save(tmp / STATE_DIR / name, subtree)
            checkpointer.wait_until_finished()  # surface background save errors here, not never
        (tmp / SIDECAR).write_text(json_text(sidecar, sort_keys=True))
    return path


def read_sidecar(path) -> dict:
    path = Path(path).resolve()
    sidecar_path = path / SIDECAR
    if not sidecar_path.is_file():
        raise CheckpointFormatError(f"{path} is not a jaxgan checkpoint (no {SIDECAR}); "
                                    "convert a .pkl or .pt first with `jaxgan convert`")
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointFormatError(f"{sidecar_path} is not valid JSON: {e}") from None
    if sidecar.get("format") != FORMAT or sidecar.get("format_version") != FORMAT_VERSION:
        raise CheckpointFormatError(f"{path}: unsupported checkpoint format {sidecar.get('format')!r} "
                                    f"version {sidecar.get('format_version')!r}")
    # Kinds renamed since the checkpoint was written ("lpips-vgg" -> "lpips") are read by their current name, so
    # every comparison with a kind (models_of_kind, load_model) sees one name per kind.
    for entry in sidecar.get("models", {}).values():
        if isinstance(entry, dict) and isinstance(entry.get("kind"), str):
            entry["kind"] = canonical_kind(entry["kind"])
    return sidecar


def load_checkpoint(path, names: tuple[str, ...] | None = None) -> tuple[dict[str, SplitModel], dict]:
    """Load the models `names` (default: all) of the checkpoint at `path`; returns ({name: SplitModel}, sidecar)."""
    path = Path(path).resolve()
    sidecar = read_sidecar(path)
    available = sidecar["models"]
    names = tuple(available) if names is None else names
    missing = [n for n in names if n not in available]
    if missing:
        raise CheckpointFormatError(f"{path} has no model {missing[0]!r}; it holds {sorted(available)}")
    device = jax.local_devices()[0]
    sharding = jax.sharding.SingleDeviceSharding(device)

    def target_of(state):
        return jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                                      nnx.to_pure_dict(state))

    abstract = {name: abstract_model(config_from_dict(available[name])) for name in names}
    with process_checkpointer() as checkpointer:
        for model_name, model in abstract.items():
            target = {"params": target_of(model.params), "buffers": target_of(model.buffers)}
            restored = checkpointer.restore(path / STATE_DIR / model_name, target)
            nnx.replace_by_pure_dict(model.params, restored["params"])
            nnx.replace_by_pure_dict(model.buffers, restored["buffers"])
    return abstract, sidecar


def _kinds(kind: str | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(canonical_kind(k) for k in ((kind,) if isinstance(kind, str) else kind))


def models_of_kind(sidecar: dict, kind: str | tuple[str, ...]) -> list[str]:
    """The names of the checkpoint's models of kind `kind` (a current or legacy name, or a tuple of kinds any of
    which will do), in stored order."""
    kinds = _kinds(kind)
    return [name for name, entry in sidecar["models"].items() if canonical_kind(entry.get("kind")) in kinds]


def load_model(path, kind: str | tuple[str, ...] = GENERATOR_KINDS, *, name: str | None = None,
               hint: str | None = None) -> SplitModel:
    """The model of kind `kind` (one kind, or a tuple of kinds any of which will do; by default any image
    generator) in the checkpoint at `path`: the one called `name` (e.g. "G", where jaxgan stores generators), or
    without a name the first one of that kind stored.

    Raises CheckpointFormatError if `path` is not a jaxgan checkpoint, has no model `name`, or holds a model of
    another kind under that name; ModelNotFound (a CheckpointFormatError) naming what it holds instead when it has no
    model of the kind. `hint` (e.g. how to make such a checkpoint) ends the message.
    """
    kinds = _kinds(kind)
    description = " or ".join(kind_named(k).description for k in kinds)
    sidecar = read_sidecar(path)
    suffix = f"; {hint}" if hint else ""
    if name is not None:
        entry = sidecar["models"].get(name)
        if entry is None:
            raise CheckpointFormatError(f"{Path(path).resolve()} has no model {name!r}; it holds "
                                        f"{sorted(sidecar['models'])}{suffix}")
        if entry.get("kind") not in kinds:
            other = MODEL_KINDS.get(entry.get("kind"))
            raise CheckpointFormatError(f"model {name!r} of {Path(path)} is a "
                                        f"{other.description if other else entry.get('kind')}, not a {description}"
                                        f"{suffix}")
        names = [name]
    else:
        names = models_of_kind(sidecar, kinds)
    if not names:
        held = ", ".join(sorted(sidecar["models"])) or "nothing"
        raise ModelNotFound(f"{Path(path)} holds no {description} (it holds {held}){suffix}")
    return load_checkpoint(path, names=names[:1])[0][names[0]]
