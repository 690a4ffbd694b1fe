"""DatasetGAN / EditGAN pixel-classifier files -> one jaxgan segmentation-branch ensemble.

Follows EditGAN's `train_interpreter.py` and `pixel_classifier` in `models/DatasetGAN/classifer.py`
(nv-tlabs/editGAN_release@fef9ab8; DatasetGAN's `datasetGAN/train_interpreter.py` is the same): the official
trainers save one file per ensemble member,
`model_{N}.pth` (the EditGAN tool loads them renamed `car_model_{N}.pth`), each `{'model_state_dict': sd}` with
the `nn.DataParallel` prefix `module.` on every key of `pixel_classifier.layers`:
`layers.0` Linear(dim, H1), `layers.2` BatchNorm1d(H1), `layers.3` Linear(H1, H2), `layers.5` BatchNorm1d(H2),
`layers.6` Linear(H2, classes). A bare state dict, or one without the prefix, is accepted too.

The members are stacked on a leading model axis in the order of their model number. The key map is strict: every
source key consumed (`num_batches_tracked` is checked to be an integer count and dropped: evaluation never reads
it), every target leaf filled, and the classifier width must be the one DatasetGAN builds for its class count.
"""

import re
from pathlib import Path

import numpy as np

from checkpoints_convert.keymap import ConversionError, KeyRule, fill_model, map_keys
from checkpoints_convert.torch_reader import load_torch_file
from jaxgan.models.segbranch import SegBranchConfig, abstract_model
from jaxgan.nn.split import SplitModel

MODEL_NAME = "S"
# model_3.pth, car_model_3.pth; not the periodic snapshots model_iter5000_number_3.pth
MEMBER_FILE = re.compile(r"(?:.*_)?model_(\d+)\.pth")

_LAYERS = {"0": "fc0", "2": "bn0", "3": "fc1", "5": "bn1", "6": "fc2"}
CLASSIFIER_KEY_MAP = [
    KeyRule(r"(?:module\.)?layers\.(0|3|6)\.(weight|bias)", lambda m: f"{_LAYERS[m.group(1)]}.{m.group(2)}"),
    KeyRule(r"(?:module\.)?layers\.(2|5)\.(weight|bias|running_mean|running_var)",
            lambda m: f"{_LAYERS[m.group(1)]}.{m.group(2)}"),
    KeyRule(r"(?:module\.)?layers\.(2|5)\.num_batches_tracked", None,
            check=lambda a: a.shape == () and np.issubdtype(a.dtype, np.integer), describe="an integer count"),
]


def member_files(sources) -> list[Path]:
    """The ensemble's files: the given files, or the `*model_{N}.pth` files of a given directory, by N."""
    sources = [Path(s) for s in sources]
    if len(sources) == 1 and sources[0].is_dir():
        found = [p for p in sources[0].iterdir() if MEMBER_FILE.fullmatch(p.name)]
        if not found:
            raise ConversionError(f"{sources[0]}: no classifier files named model_N.pth or <prefix>_model_N.pth")
        numbers = [int(MEMBER_FILE.fullmatch(p.name).group(1)) for p in found]
        if len(set(numbers)) != len(numbers):
            raise ConversionError(f"{sources[0]}: several files for one model number: "
                                  f"{', '.join(sorted(p.name for p in found))}; pass the files explicitly")
        return [p for _, p in sorted(zip(numbers, found))]
    for path in sources:
        if not path.is_file():
            raise ConversionError(f"{path}: no such file")
    return sources


def _state_dict(path: Path) -> dict:
    data = load_torch_file(path)
    if isinstance(data, dict) and "model_state_dict" in data:
        data = data["model_state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, np.ndarray) for v in data.values()):
        raise ConversionError(f"{path.name}: expected {{'model_state_dict': state dict}} of a DatasetGAN "
                              f"pixel classifier, found {type(data).__name__}")
    return data


def convert_state_dicts(state_dicts: list[dict], names: list[str]) -> SplitModel:
    """Stack the classifiers' state dicts into one ensemble; `names` label the errors."""
    members = []
    for sd, name in zip(state_dicts, names):
        try:
            members.append(map_keys(sd, CLASSIFIER_KEY_MAP))
        except ConversionError as e:
            raise ConversionError(f"{name}: {e}") from None
    first = members[0]
    try:
        cfg = SegBranchConfig(feature_dim=first["fc0.weight"].shape[1], num_classes=first["fc2.weight"].shape[0],
                              num_models=len(members))
    except KeyError as e:
        raise ConversionError(f"{names[0]}: lacks {e.args[0]}: not a DatasetGAN pixel classifier") from None
    for member, name in zip(members[1:], names[1:]):
        if set(member) != set(first) or any(member[k].shape != first[k].shape for k in first):
            raise ConversionError(f"{name} does not have the shapes of {names[0]}; an ensemble's members must match")
    stacked = {k: np.stack([m[k] for m in members]) for k in first}
    try:
        return fill_model(abstract_model(cfg), stacked)
    except ConversionError as e:
        raise ConversionError(f"{names[0]}: {e} (DatasetGAN uses widths {cfg.hidden} for {cfg.num_classes} "
                              "classes)") from None


def convert_segbranch(sources) -> tuple[dict[str, SplitModel], dict]:
    """Read the member files (or a directory of them); returns ({'S': ensemble}, notes)."""
    files = member_files(sources)
    model = convert_state_dicts([_state_dict(p) for p in files], [p.name for p in files])
    cfg = model.config
    notes = {"format": "datasetgan-pixel-classifier", "members": [p.name for p in files],
             "num_classes": cfg.num_classes, "feature_dim": cfg.feature_dim}
    return {MODEL_NAME: model}, notes
