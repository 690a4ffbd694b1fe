"""`jaxgan editgan seg / edit / apply` and `jaxgan convert --kind segbranch` end to end on the fixtures: the
rosinality 64 px generator (EditGAN's layout), the official classifier files, the random-trunk LPIPS.

One round trip (module-scoped: each command compiles its programs once), then refusals that write nothing.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from jaxgan.cli import main
from jaxgan.cli.common import LPIPS_ENV
from tests.helpers import (assert_refused, convert_once, fixture_path, generator_checkpoint, load_fixture,
                           lpips_checkpoint)

STEPS = 3


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], env={LPIPS_ENV: None})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    G = convert_once("rosinality", tmp_path_factory, fixture_path("rosinality_G_res64.pt"))[0]
    S, converted = convert_once("segbranch", tmp_path_factory, fixture_path("editgan_classifiers_res64"),
                                 "--kind", "segbranch")
    assert "S: segbranch (3 classifiers, 12 classes, 1024 feature channels)" in converted.output
    return G, S, lpips_checkpoint(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def round_trip(checkpoints, tmp_path_factory):
    G, S, L = checkpoints
    root = tmp_path_factory.mktemp("editgan")
    seg = run("editgan", "seg", G, "--seg", S, "--seeds", "0-1", "--outdir", root / "seg")
    assert seg.exit_code == 0, seg.output
    labels = np.asarray(Image.open(root / "seg" / "seed0001_labels.png"))
    target = labels.copy()
    target[20:36, 20:36] = 4
    Image.fromarray(target).save(root / "target.png")
    region = np.zeros((64, 64), np.uint8)
    region[20:36, 20:36] = 255
    Image.fromarray(region).save(root / "region.png")
    edit = run("editgan", "edit", G, "--seg", S, "--lpips", L, "--ws", root / "seg" / "ws.npy", "--index", "1",
               "--target-seg", root / "target.png", "--region", root / "region.png", "--steps", STEPS,
               "--outdir", root / "edit")
    assert edit.exit_code == 0, edit.output
    apply = run("editgan", "apply", G, "--seg", S, "--vector", root / "edit" / "edit_vector.npz", "--ws",
                root / "seg" / "ws.npy", "--refine", STEPS, "--lpips", L, "--outdir", root / "apply")
    assert apply.exit_code == 0, apply.output
    return root, labels


def test_seg_writes_images_labels_figures_and_latents(checkpoints, round_trip):
    root, labels = round_trip
    files = sorted(p.name for p in (root / "seg").iterdir())
    assert files == ["seed0000.png", "seed0000_labels.png", "seed0000_seg.png", "seed0001.png",
                     "seed0001_labels.png", "seed0001_seg.png", "seg.json", "ws.npy"]
    ws = np.load(root / "seg" / "ws.npy")
    assert ws.shape == (2, 10, 64) and ws.dtype == np.float32
    assert Image.open(root / "seg" / "seed0001_labels.png").mode == "L"
    assert labels.max() < 12
    summary = json.loads((root / "seg" / "seg.json").read_text())
    assert [e["name"] for e in summary["images"]] == ["seed0000", "seed0001"]
    assert all(e["uncertainty"] >= 0 for e in summary["images"]) and summary["ensemble"] == "mean"


def test_edit_writes_the_vector_and_the_edited_latent(round_trip):
    root, labels = round_trip
    out = root / "edit"
    assert {p.name for p in out.iterdir()} == {"edit.json", "edit_vector.npz", "ws0001_after.png",
                                               "ws0001_compare.png", "ws0001_labels.png", "ws0001_vector.npz",
                                               "ws_edited.npy"}
    ws = np.load(root / "seg" / "ws.npy")
    edited = np.load(out / "ws_edited.npy")
    with np.load(out / "edit_vector.npz") as vector:
        np.testing.assert_allclose(vector["vector"], edited[0] - ws[1], atol=1e-6)
        changed = set(np.unique(labels[20:36, 20:36])) | {4}
        assert list(vector["class_ids"]) == sorted(int(c) for c in changed if c != 0)
        assert json.loads(str(vector["meta"]))["steps"] == STEPS
    summary = json.loads((out / "edit.json").read_text())
    entry = summary["edits"][0]
    assert entry["region_pixels"] == 22 * 22 and entry["name"] == "ws0001"
    assert summary["settings"]["steps"] == STEPS and summary["settings"]["learning_rate"] == 0.02


@pytest.mark.slow  # compiles a third edit program (about 50 s on 2 cores); run with -m slow
def test_edit_with_the_encoder_adds_the_official_encoder_term(checkpoints, round_trip, tmp_path_factory):
    import jax.numpy as jnp

    from jaxgan.checkpoint import load_model
    from jaxgan.models import encoder, stylegan2
    G, S, L = checkpoints
    root, _ = round_trip
    E = convert_once("editgan-encoder", tmp_path_factory, fixture_path("editgan_encoder_res64.pth"), "--kind",
                     "editgan-encoder")[0]
    out = root / "edit_encoder"
    result = run("editgan", "edit", G, "--seg", S, "--lpips", L, "--ws", root / "seg" / "ws.npy", "--index", "1",
                 "--target-seg", root / "target.png", "--region", root / "region.png", "--steps", 2,
                 "--encoder", E, "--outdir", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "edit.json").read_text())
    assert summary["loss_names"] == ["lpips", "mse", "ce", "encoder", "loss"] and summary["encoder"] == str(E)
    first = summary["edits"][0]["first"]
    # the official total: 15 (10 LPIPS + 5 MSE) + 1 CE + 1 MSE(w, E(x)), x = G(w) in [0, 1], E in train mode
    assert first["loss"] == pytest.approx(15 * (10 * first["lpips"] + 5 * first["mse"]) + first["ce"]
                                          + first["encoder"], rel=1e-5)
    w0 = np.load(root / "seg" / "ws.npy")[1]
    image01 = (stylegan2.synthesis(load_model(G), jnp.asarray(w0)[None], noise_mode="const") + 1) / 2
    encoded = np.asarray(encoder.encode(load_model(E, "editgan-encoder"), image01))[0]
    assert first["encoder"] == pytest.approx(float(np.mean((w0 - encoded) ** 2)), rel=1e-3)


def test_apply_refines_every_latent(round_trip):
    root, _ = round_trip
    out = root / "apply"
    summary = json.loads((out / "apply.json").read_text())
    assert [e["name"] for e in summary["images"]] == ["ws0000", "ws0001"]
    after = np.load(out / "ws_after.npy")
    ws = np.load(root / "seg" / "ws.npy")
    with np.load(root / "edit" / "edit_vector.npz") as vector:
        moved = ws + vector["vector"]
    assert after.shape == ws.shape and not np.allclose(after, moved)  # refinement moved them off w + vector
    assert np.abs(after - moved).max() < 0.02 * (STEPS - 1) + 1e-4  # Adam: at most about lr per update


def test_apply_at_scale_zero_writes_the_input_latents(checkpoints, round_trip, tmp_path):
    G, S, _ = checkpoints
    root, _ = round_trip
    result = run("editgan", "apply", G, "--seg", S, "--vector", root / "edit" / "edit_vector.npz", "--ws",
                 root / "seg" / "ws.npy", "--scale", 0, "--outdir", tmp_path / "out")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "ws_after.npy"), np.load(root / "seg" / "ws.npy"))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "ws0001_after.png")),
                                  np.asarray(Image.open(root / "seg" / "seed0001.png")))


@pytest.mark.parametrize("case, message", [
    ("small target", "but 64x64 is expected"),
    ("class 12", "12"),
    ("empty region", "marks no pixels"),
    ("two regions", "--region once"),
])
def test_bad_edit_inputs_write_nothing(checkpoints, round_trip, tmp_path, case, message):
    G, S, L = checkpoints
    root, labels = round_trip
    target, region = root / "target.png", root / "region.png"
    regions = [region]
    if case == "small target":
        target = tmp_path / "t.png"
        Image.fromarray(labels[:32, :32]).save(target)
    elif case == "class 12":
        target = tmp_path / "t.png"
        Image.fromarray(np.full((64, 64), 12, np.uint8)).save(target)
    elif case == "empty region":
        region = tmp_path / "r.png"
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(region)
        regions = [region]
    elif case == "two regions":
        regions = [region, region, region]
    args = ["editgan", "edit", G, "--seg", S, "--lpips", L, "--ws", root / "seg" / "ws.npy", "--target-seg", target]
    for r in regions:
        args += ["--region", r]
    result = run(*args, "--outdir", tmp_path / "out")
    assert_refused(result, message, tmp_path / "out", exit_code=None)


def test_refinement_of_an_official_vector_needs_class_ids(checkpoints, round_trip, tmp_path):
    G, S, L = checkpoints
    root, _ = round_trip
    official = tmp_path / "wheel_enlarge.npy"
    np.save(official, np.zeros((1, 10, 64), np.float32))
    result = run("editgan", "apply", G, "--seg", S, "--vector", official, "--seeds", "0", "--refine", 5,
                 "--lpips", L, "--outdir", tmp_path / "out")
    assert_refused(result, "give --class-ids", tmp_path / "out")


def test_classifier_files_for_another_generator_are_refused(checkpoints, tmp_path):
    """The classifiers expect 1024 feature channels; the 64 px stylegan2-ada fixture's layers give another count."""
    _, S, _ = checkpoints

    class _Factory:  # generator_checkpoint wants a tmp_path_factory; this test only needs a fresh folder
        @staticmethod
        def mktemp(name):
            (tmp_path / name).mkdir()
            return tmp_path / name
    other = generator_checkpoint(_Factory)
    result = run("editgan", "seg", other, "--seg", S, "--seeds", "0", "--outdir", tmp_path / "out")
    assert_refused(result, "feature channels", tmp_path / "out")


def _annotations(folder, ws, labels_list):
    (folder / "latents").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i, (w, labels) in enumerate(zip(ws, labels_list)):
        np.save(folder / "latents" / f"car{i}.npy", w)
        Image.fromarray(labels.astype(np.uint8)).save(folder / "masks" / f"car{i}.png")
    return folder / "latents", folder / "masks"


def test_train_seg_trains_scores_and_writes_a_branch_the_other_commands_load(checkpoints, round_trip, tmp_path):
    G, _, _ = checkpoints
    root, _ = round_trip
    ws = np.load(root / "seg" / "ws.npy")
    images = [np.asarray(Image.open(root / "seg" / f"seed000{i}.png"), np.float32).mean(-1) for i in range(2)]
    labels = [np.digitize(img, np.quantile(img, [1 / 3, 2 / 3])) for img in images]  # dark / mid / bright
    latents, masks = _annotations(tmp_path / "train", ws, labels)
    result = run("editgan", "train-seg", G, "--latents", latents, "--masks", masks, "--classes", 3, "--models", 2,
                 "--epochs", 1, "--eval-latents", latents, "--eval-masks", masks, "--out", tmp_path / "seg3")
    assert result.exit_code == 0, result.output
    assert "trained 2 classifiers" in result.output and "mIoU" in result.output and "class 2:" in result.output
    sidecar = json.loads((tmp_path / "seg3" / "jaxgan.json").read_text())
    assert sidecar["models"]["S"]["config"] == {"feature_dim": 1024, "num_classes": 3, "num_models": 2}
    assert sidecar["training"]["annotated"] == ["car0", "car1"]
    assert 0 < sidecar["evaluation"]["pixel_accuracy"] <= 1
    seg = run("editgan", "seg", G, "--seg", tmp_path / "seg3", "--ws", root / "seg" / "ws.npy", "--ensemble",
              "vote", "--outdir", tmp_path / "out")
    assert seg.exit_code == 0, seg.output
    assert np.asarray(Image.open(tmp_path / "out" / "ws0000_labels.png")).max() <= 2


def test_train_seg_refuses_unpaired_annotations(checkpoints, round_trip, tmp_path):
    G, _, _ = checkpoints
    root, labels = round_trip
    latents, masks = _annotations(tmp_path / "train", np.load(root / "seg" / "ws.npy"), [labels, labels])
    (masks / "car1.png").rename(masks / "other.png")
    result = run("editgan", "train-seg", G, "--latents", latents, "--masks", masks, "--classes", 12,
                 "--out", tmp_path / "seg")
    assert_refused(result, "unpaired: car1, other", tmp_path / "seg")


# ----------------------------------------------------------------------------------------------------------------
# Content: `seg` labels are the official segmentation; `train-seg` scores the held-out images as numpy does


def _official_uint8(images_nchw):
    """generate.py's conversion, (x * 127.5 + 128) clipped, truncated, of the official float images."""
    return np.clip(np.transpose(images_nchw, (0, 2, 3, 1)) * np.float32(127.5) + np.float32(128), 0,
                   255).astype(np.uint8)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_seg_labels_are_the_official_segmentation_of_the_fixture_latents(checkpoints, tmp_path, mode):
    """editgan_segbranch_res64.npz holds the official EditGAN generator + classifiers' argmax of the mean logits
    (`out/{mode}_seg_b{i}`) for its latents `out/w_plus_trunc`, computed by the official PyTorch code: the command
    must write exactly those class ids (the two modes differ at 142 and 26 pixels), and the image the official one
    through the uint8 rule (a value within float32 rounding of a grey-level boundary may flip by one)."""
    G, S, _ = checkpoints
    data, _ = load_fixture("editgan_segbranch_res64.npz")
    np.save(tmp_path / "ws.npy", data["out/w_plus_trunc"])
    out = tmp_path / "out"
    result = run("editgan", "seg", G, "--seg", S, "--ws", tmp_path / "ws.npy", "--mode", mode, "--outdir", out)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(out / "ws.npy"), data["out/w_plus_trunc"])
    official = _official_uint8(data["out/img"])
    scaled = np.transpose(data["out/img"], (0, 2, 3, 1)).astype(np.float64) * 127.5 + 128
    for i in range(2):
        labels = np.asarray(Image.open(out / f"ws{i:04d}_labels.png"))
        np.testing.assert_array_equal(labels, data[f"out/{mode}_seg_b{i}"])
        image = np.asarray(Image.open(out / f"ws{i:04d}.png")).astype(int)
        differ = image != official[i]
        assert not np.any(differ & (np.abs(scaled[i] - np.round(scaled[i])) > 1e-4 * 127.5))
        assert np.all(np.abs(image - official[i])[differ] == 1)


def _position_mask():
    """A 3-class mask that is a function of position only: class 0 above row 21, below it class 1 on the left half
    and class 2 on the right (the generator's features carry position, e.g. its learned 4x4 constant)."""
    y, x = np.mgrid[0:64, 0:64]
    return np.where(y < 21, 0, np.where(x < 32, 1, 2)).astype(np.uint8)


def test_train_seg_reports_the_held_out_scores_of_its_predictions(checkpoints, tmp_path):
    """Train on the fixture's two untruncated latents (out/w_plus), score on the same z truncated (out/w_plus_trunc,
    psi 0.7: other latents, other images), all with the positional mask. The branch's predictions for the held-out
    latents are read back through `editgan seg` (the mean-logit argmax, bilinear, as evaluation uses) and scored
    here in numpy: per-class accuracy = correct / true pixels of the class, IoU = correct / (true + predicted -
    correct), mIoU their mean, pixel accuracy = correct / all. The command's printed and stored scores must be
    those (within 1e-3, about two pixels of a class)."""
    G, _, _ = checkpoints
    data, _ = load_fixture("editgan_segbranch_res64.npz")
    mask = _position_mask()
    train_latents, train_masks = _annotations(tmp_path / "train", data["out/w_plus"], [mask, mask])
    held_ws = data["out/w_plus_trunc"]
    eval_latents, eval_masks = _annotations(tmp_path / "eval", held_ws, [mask, mask])
    result = run("editgan", "train-seg", G, "--latents", train_latents, "--masks", train_masks, "--classes", 3,
                 "--models", 2, "--epochs", 1, "--eval-latents", eval_latents, "--eval-masks", eval_masks,
                 "--out", tmp_path / "seg3")
    assert result.exit_code == 0, result.output
    np.save(tmp_path / "held.npy", held_ws)
    seg = run("editgan", "seg", G, "--seg", tmp_path / "seg3", "--ws", tmp_path / "held.npy", "--outdir",
              tmp_path / "pred")
    assert seg.exit_code == 0, seg.output
    predicted = np.stack([np.asarray(Image.open(tmp_path / "pred" / f"ws{i:04d}_labels.png")) for i in range(2)])
    truth = np.stack([mask, mask])
    correct = np.array([np.sum((truth == c) & (predicted == c)) for c in range(3)])
    in_truth = np.array([np.sum(truth == c) for c in range(3)])
    in_prediction = np.array([np.sum(predicted == c) for c in range(3)])
    accuracy, iou = correct / in_truth, correct / (in_truth + in_prediction - correct)
    pixel_accuracy = correct.sum() / truth.size
    assert pixel_accuracy > 0.9  # the positional rule is learnt (measured 0.99; always the largest class: 0.34)
    evaluation = json.loads((tmp_path / "seg3" / "jaxgan.json").read_text())["evaluation"]
    assert evaluation["images"] == ["car0", "car1"]
    np.testing.assert_allclose(evaluation["per_class_accuracy"], accuracy, atol=1e-3)
    np.testing.assert_allclose(evaluation["per_class_iou"], iou, atol=1e-3)
    assert abs(evaluation["pixel_accuracy"] - pixel_accuracy) <= 1e-3 and abs(evaluation["miou"] - iou.mean()) <= 1e-3
    lines = result.output.splitlines()
    summary = next(line for line in lines if line.startswith("held-out (2 images): pixel accuracy"))
    printed = [float(v) for v in summary.replace(",", "").split()[-3::2]]
    np.testing.assert_allclose(printed, [pixel_accuracy, iou.mean()], atol=1.5e-3)
    for c in range(3):
        line = next(line for line in lines if line.startswith(f"  class {c}: accuracy "))
        values = [float(v) for v in line.replace(",", "").split()[-3::2]]
        np.testing.assert_allclose(values, [accuracy[c], iou[c]], atol=1.5e-3)
