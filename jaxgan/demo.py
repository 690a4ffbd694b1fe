"""The bundled demo model: where it lives, the name `demo` that every command accepts for it, and the demo job.

The command-line argument that accepts `demo` is `jaxgan.cli.common.CHECKPOINT`.

jaxgan ships one small StyleGAN2 generator trained by jaxgan itself on the procedural toyfaces dataset
(`jaxgan.data.toyfaces`, issue 8), so that `jaxgan demo` and every command that takes a checkpoint work offline on
a fresh clone. It is an ordinary jaxgan checkpoint directory (`jaxgan.json` + orbax state) installed as package
data under `jaxgan/assets/demo/`; how it was trained is recorded in its `jaxgan.json` (`training`) and in the
README.

`demo` as a checkpoint argument always means the bundled model; a local folder that happens to be called `demo`
is reached as `./demo`.
"""

from pathlib import Path

DEMO_NAME = "demo"
BUNDLED_DIR = Path(__file__).resolve().parent / "assets" / "demo"


class BundledModelMissing(FileNotFoundError):
    """This installation has no bundled demo model (a source tree from before it was trained, or a stripped wheel)."""


def bundled_checkpoint() -> Path:
    """The bundled demo checkpoint directory; raises BundledModelMissing if this installation lacks it."""
    if not (BUNDLED_DIR / "jaxgan.json").is_file():
        raise BundledModelMissing(f"the bundled demo model is missing from this installation ({BUNDLED_DIR}); "
                                  "reinstall jaxgan, or give a checkpoint directory")
    return BUNDLED_DIR


def resolve_checkpoint(value) -> Path:
    """`demo` -> the bundled checkpoint; anything else is taken as a path, returned unchanged."""
    return bundled_checkpoint() if str(value) == DEMO_NAME else Path(value)


# What `jaxgan demo` does with a bundled model. These defaults were written for a 64 px model (radii are the DragGAN
# UI's "pixels at 512 px", so 16 and 48 are 2 and 6 px there); the bundled 32 px model overrides the drag in its
# jaxgan.json under "demo" (its drag settings are also what `jaxgan drag demo` takes by default, see
# `jaxgan.edit.drag.recommended_settings`).
DEFAULT_DEMO = {
    "samples": {"seeds": "0-15", "trunc": 0.7},
    "drag": {"seed": 0, "trunc": 0.7, "points": "40,24", "targets": "44,18", "steps": 60, "lr": 0.01, "r1": 16.0,
             "r2": 48.0, "feature_idx": 3},
}


def demo_settings(sidecar: dict) -> dict:
    """DEFAULT_DEMO, updated section by section with the checkpoint's own `demo` entry."""
    own = sidecar.get("demo", {})
    return {section: {**values, **own.get(section, {})} for section, values in DEFAULT_DEMO.items()}
