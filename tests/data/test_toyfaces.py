"""The procedural toy-face dataset (jaxgan.data.toyfaces): determinism per seed, shapes, labels that agree with the
image, landmarks, re-rendering edited attributes, the pose, anti-aliasing and the resumable batch stream.

Expected colours come from the sampled attributes and the module's colour constants (what the part should be
painted with), never from the renderer; geometric bounds are worked out from the documented attribute ranges.
"""

import dataclasses

import numpy as np
import pytest

from jaxgan.data import toyfaces as tf

ID = tf.CLASS_IDS
LM = tf.LANDMARK_IDS
SEEDS = np.arange(64)


@pytest.fixture(scope="module")
def faces64():
    return tf.render_batch(SEEDS, 64)


@pytest.fixture(scope="module")
def faces32():
    return tf.render_batch(SEEDS, 32)


def _assert_same(a: tf.ToyFaces, b: tf.ToyFaces):
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert a.params.keys() == b.params.keys()
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)


def _take(faces: tf.ToyFaces, index) -> tf.ToyFaces:
    return tf.ToyFaces(faces.images[index], faces.labels[index], faces.landmarks[index],
                       {k: v[index] for k, v in faces.params.items()})


def _interior(labels: np.ndarray) -> np.ndarray:
    """bool [N, H-2, W-2]: pixels (the border left out) whose 8 neighbours all have their label."""
    h, w = labels.shape[1:]
    centre = labels[:, 1:-1, 1:-1]
    same = np.ones(centre.shape, bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            same &= labels[:, 1 + dr:h - 1 + dr, 1 + dc:w - 1 + dc] == centre
    return same


def _luminance(images):
    return images.astype(np.float64).mean(axis=-1)


def test_same_seeds_give_identical_faces_and_other_seeds_other_faces(faces64):
    _assert_same(tf.render_batch(SEEDS[:8], 64), _take(faces64, slice(0, 8)))
    other = tf.render_batch(SEEDS[:8] + 1000, 64)
    for i in range(8):
        assert (other.images[i] != faces64.images[i]).mean() > 0.2
        assert not np.array_equal(other.params["skin_rgb"][i], faces64.params["skin_rgb"][i])


def test_a_face_does_not_depend_on_the_batch_it_is_in(faces64):
    # Each part is drawn in the batch's window of it: a lone face gets the tightest windows.
    for i in (3, 17, 40):
        _assert_same(tf.render_batch(SEEDS[i:i + 1], 64), _take(faces64, slice(i, i + 1)))
    _assert_same(tf.render_batch(SEEDS[[9, 2, 5]], 64), _take(faces64, [9, 2, 5]))


def test_the_windows_hold_every_part(monkeypatch):
    # Rendering on the whole grid (every window the full image) gives the same faces, one at a time.
    params = tf.sample_params(np.arange(100, 124))
    windowed = [tf.render_params({k: v[i:i + 1] for k, v in params.items()}, 32) for i in range(24)]
    monkeypatch.setattr(tf, "_window", lambda p, part, res: (slice(0, res), slice(0, res)))
    whole = tf.render_params(params, 32)
    for i, face in enumerate(windowed):
        np.testing.assert_array_equal(face.images[0], whole.images[i])
        np.testing.assert_array_equal(face.labels[0], whole.labels[i])


@pytest.mark.parametrize("resolution", tf.RESOLUTIONS)
def test_shapes_dtypes_and_class_ids(resolution):
    faces = tf.render_batch(np.array([5, 6, 7], np.uint64), resolution)
    assert faces.images.shape == (3, resolution, resolution, 3) and faces.images.dtype == np.uint8
    assert faces.labels.shape == (3, resolution, resolution) and faces.labels.dtype == np.uint8
    assert faces.landmarks.shape == (3, len(tf.LANDMARK_NAMES), 2) and faces.landmarks.dtype == np.float32
    assert int(faces.labels.max()) < len(tf.CLASS_NAMES)
    assert faces.params.keys() == tf.PARAM_SPECS.keys()
    for name, (shape, dtype) in tf.PARAM_SPECS.items():
        assert faces.params[name].shape == (3, *shape) and faces.params[name].dtype == dtype, name


def test_names():
    assert tf.CLASS_NAMES[0] == "background" and len(set(tf.CLASS_NAMES)) == len(tf.CLASS_NAMES) <= 256
    assert len(set(tf.LANDMARK_NAMES)) == len(tf.LANDMARK_NAMES)


def test_every_class_is_drawn_and_the_attributes_vary(faces64):
    counts = np.bincount(faces64.labels.ravel(), minlength=len(tf.CLASS_NAMES))
    assert (counts > 0).all(), dict(zip(tf.CLASS_NAMES, counts))
    p = faces64.params
    assert set(p["hair_style"]) == {0, 1, 2}
    assert p["mouth_open"].any() and not p["mouth_open"].all()
    assert p["eye_open"].any() and not p["eye_open"].all()
    assert p["teeth"][p["mouth_open"]].any() and not p["teeth"][p["mouth_open"]].all()


def _labels_near(faces: tf.ToyFaces) -> np.ndarray:
    """bool [N, K, C]: class c occurs in the 3 x 3 pixels around landmark k (its nearest pixel and neighbours)."""
    res = faces.labels.shape[1]
    padded = np.pad(faces.labels, ((0, 0), (1, 1), (1, 1)), constant_values=255)
    row, col = np.rint(faces.landmarks).astype(int).transpose(2, 0, 1)  # [N, K]
    n = np.arange(len(faces.labels))[:, None]
    near = np.zeros(row.shape + (len(tf.CLASS_NAMES),), bool)
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            label = padded[n, row + dr, col + dc]
            near[n, np.arange(row.shape[1]), np.minimum(label, len(tf.CLASS_NAMES) - 1)] |= label < 255
    assert res > 0
    return near


def test_landmarks_lie_inside_the_image_and_on_their_parts(faces64, faces32):
    for faces in (faces64, faces32):
        res = faces.images.shape[1]
        assert (faces.landmarks >= 0).all() and (faces.landmarks <= res - 1).all()
        # An open eye's pupil landmark is on a pixel labelled pupil, even at 32 px.
        row, col = np.rint(faces.landmarks).astype(int).transpose(2, 0, 1)
        at = faces.labels[np.arange(len(SEEDS))[:, None], row, col]  # [N, K] the label under each landmark
        for side, (eye, pupil) in enumerate((("left_eye", "left_pupil"), ("right_eye", "right_pupil"))):
            is_open = faces.params["eye_open"][:, side]
            assert (at[is_open, LM[pupil]] == ID["pupil"]).all(), pupil
            # A closed eye: both landmarks are the eye centre, the middle of the lid line.
            np.testing.assert_array_equal(faces.landmarks[~is_open, LM[pupil]], faces.landmarks[~is_open, LM[eye]])
        # The others: their part within a pixel (thin lips and lid lines at 32 px can miss the nearest pixel).
        near = _labels_near(faces)
        expected = {"left_eye": ("eye_white", "pupil", "eyelid"), "right_eye": ("eye_white", "pupil", "eyelid"),
                    "left_brow": ("eyebrow",), "right_brow": ("eyebrow",), "nose_tip": ("nose",),
                    "mouth_left": ("lips", "mouth", "teeth"), "mouth_right": ("lips", "mouth", "teeth"),  # open: thin lips
                    "mouth_center": ("lips", "mouth", "teeth"),
                    "chin": ("skin",)}
        for name, classes in expected.items():
            found = near[:, LM[name], [ID[c] for c in classes]].any(axis=1)
            assert found.all(), (name, np.flatnonzero(~found))
        assert (at[:, LM["nose_tip"]] == ID["nose"]).all()
        left, right = faces.landmarks[:, LM["left_eye"]], faces.landmarks[:, LM["right_eye"]]
        assert (left[:, 1] < right[:, 1]).all()  # image left and right
        # Brows above the eyes above the nose above the mouth, in the face's own (rotated) up direction.
        up = left - faces.landmarks[:, LM["mouth_left"]]
        for upper, lower in (("left_brow", "left_eye"), ("nose_tip", "mouth_center"), ("left_eye", "nose_tip")):
            assert (((faces.landmarks[:, LM[upper]] - faces.landmarks[:, LM[lower]]) * up).sum(-1) > 0).all()


def test_closed_eyes_have_no_white_or_pupil(faces64):
    p = faces64.params
    both_closed = ~p["eye_open"].any(axis=1)
    both_open = p["eye_open"].all(axis=1)
    assert both_closed.any() and both_open.any()
    for i in np.flatnonzero(both_closed):
        assert not np.isin(faces64.labels[i], [ID["eye_white"], ID["pupil"]]).any()
        assert (faces64.labels[i] == ID["eyelid"]).any()
    for i in np.flatnonzero(both_open):
        assert (faces64.labels[i] == ID["eye_white"]).any() and (faces64.labels[i] == ID["pupil"]).any()
        assert not (faces64.labels[i] == ID["eyelid"]).any()


def _part_colours(p) -> np.ndarray:
    """float [N, C, 3]: the colour each class is painted with."""
    skin = p["skin_rgb"]
    colours = np.zeros((len(skin), len(tf.CLASS_NAMES), 3))
    for name, colour in {"skin": skin, "neck": skin * tf.NECK_SHADE, "clothes": p["clothes_rgb"],
                         "hair": p["hair_rgb"], "ear": skin * tf.EAR_SHADE, "eyebrow": p["brow_rgb"],
                         "eye_white": tf.EYE_WHITE_RGB, "pupil": p["pupil_rgb"], "eyelid": tf.LID_LINE_RGB,
                         "nose": skin * tf.NOSE_SHADE, "lips": p["lip_rgb"], "mouth": tf.MOUTH_RGB,
                         "teeth": tf.TEETH_RGB}.items():
        colours[:, ID[name]] = colour
    return colours


def test_inside_a_part_the_image_has_the_parts_colour():
    # At 128 px every part but the teeth has pixels whose 8 neighbours share their label: fully covered, exactly
    # the part's colour (up to rounding).
    faces = tf.render_batch(SEEDS[:24], 128)
    labels = faces.labels[:, 1:-1, 1:-1]
    inside = _interior(faces.labels) & (labels != ID["background"])
    expected = _part_colours(faces.params)[np.arange(24)[:, None, None], labels]
    error = np.abs(faces.images[:, 1:-1, 1:-1] - expected).max(axis=-1)
    assert (error[inside] <= 0.5 + 1e-3).all(), np.bincount(labels[inside & (error > 0.5 + 1e-3)])
    drawn = np.bincount(labels[inside], minlength=len(tf.CLASS_NAMES))
    assert (np.delete(drawn, [ID["background"], ID["teeth"]]) > 0).all(), dict(zip(tf.CLASS_NAMES, drawn))


def test_pupils_are_dark_and_eye_whites_bright(faces64, faces32):
    # Every labelled pixel, edges included (mixed with what surrounds them, more so at 32 px).
    for faces, dark, bright in ((faces64, 70, 210), (faces32, 110, 175)):
        lum = _luminance(faces.images)
        pupil, white = lum[faces.labels == ID["pupil"]], lum[faces.labels == ID["eye_white"]]
        assert np.median(pupil) < dark and np.median(white) > bright
        assert np.percentile(pupil, 90) < 145 and np.percentile(white, 10) > 145
    lum = _luminance(faces64.images)
    for i in np.flatnonzero(faces64.params["eye_open"].any(axis=1)):  # face by face at 64 px, too
        labels = faces64.labels[i]
        assert lum[i][labels == ID["pupil"]].mean() < lum[i][labels == ID["eye_white"]].mean() - 100


def test_background_away_from_the_figure_is_the_vertical_gradient(faces64):
    # "Away": 2 px or more from any pixel labelled otherwise (a part's sub-pixel tips can tint pixels next to
    # background-labelled ones).
    res = 64
    labels = faces64.labels
    away = np.ones((len(SEEDS), res - 4, res - 4), bool)
    for dr in range(5):
        for dc in range(5):
            away &= labels[:, dr:res - 4 + dr, dc:res - 4 + dc] == ID["background"]
    t = (np.arange(res) + 0.5) / res  # row centres, top to bottom
    top, bottom = faces64.params["bg_top_rgb"], faces64.params["bg_bottom_rgb"]
    gradient = top[:, None, :] + (bottom - top)[:, None, :] * t[None, :, None]  # [N, H, 3]
    expected = np.broadcast_to(gradient[:, 2:-2, None, :], (len(SEEDS), res - 4, res - 4, 3))
    assert away.mean() > 0.3
    assert np.abs(faces64.images[:, 2:-2, 2:-2][away] - expected[away]).max() <= 0.5 + 1e-3


def test_on_hair_edges_the_label_follows_the_colour_mix():
    # Where only hair and background meet (5 x 5 neighbourhoods labelled with nothing else), the image is
    # f * hair + (1 - f) * background, f the hair's coverage; the label is hair exactly where f > 1/2. Long hair's
    # outline is drawn twice (the hair behind the head and the cap in front), so f adds up both parts.
    params = tf.sample_params(np.arange(40, 56))
    params["hair_style"][:] = 2
    faces = tf.render_params(params, 64)
    labels = faces.labels
    only = np.ones((16, 60, 60), bool)
    for dr in range(5):
        for dc in range(5):
            only &= np.isin(labels[:, dr:dr + 60, dc:dc + 60], [ID["background"], ID["hair"]])
    t = (np.arange(2, 62) + 0.5) / 64
    top, bottom = params["bg_top_rgb"][:, None, None, :], params["bg_bottom_rgb"][:, None, None, :]
    background = top + (bottom - top) * t[None, :, None, None]
    hair = params["hair_rgb"][:, None, None, :]
    channel = np.abs(hair - background).argmax(-1)[..., None]  # the most telling channel, per pixel
    contrast = np.take_along_axis(hair - background, channel, -1)[..., 0]
    image = faces.images[:, 2:-2, 2:-2].astype(np.float64)
    f = np.take_along_axis(image - background, channel, -1)[..., 0] / contrast
    decided = only & (np.abs(contrast) > 40) & (np.abs(f - 0.5) > 0.03)  # rounding blurs f by <= 0.5 / 40
    mixed = decided & (f > 0.05) & (f < 0.95)
    assert mixed.sum() > 200
    np.testing.assert_array_equal(labels[:, 2:-2, 2:-2][decided] == ID["hair"], f[decided] > 0.5)


def test_rendering_the_sampled_params_equals_rendering_the_seeds(faces64):
    params = tf.sample_params(SEEDS[:16])
    _assert_same(tf.render_params(params, 64), _take(faces64, slice(0, 16)))


def _edit(params, name, value):
    edited = {k: v.copy() for k, v in params.items()}
    edited[name][...] = value
    return edited


def _changes_only_near(before: tf.ToyFaces, after: tf.ToyFaces, centre: np.ndarray, radius: np.ndarray):
    """Images and labels differ only within `radius` [N] px of `centre` [N, 2] (row, col), and they do differ."""
    res = before.images.shape[1]
    rows, cols = np.mgrid[:res, :res]
    far = np.hypot(rows - centre[:, 0, None, None], cols - centre[:, 1, None, None]) > radius[:, None, None]
    assert (before.labels != after.labels).any(axis=(1, 2)).all()
    np.testing.assert_array_equal(np.where(far, before.labels, 0), np.where(far, after.labels, 0))
    np.testing.assert_array_equal(np.where(far[..., None], before.images, 0), np.where(far[..., None], after.images, 0))


def test_opening_the_mouth_changes_only_the_mouth(faces64):
    closed = np.flatnonzero(~faces64.params["mouth_open"])[:12]
    before = _take(faces64, closed)
    after = tf.render_params(_edit(before.params, "mouth_open", True), 64)
    assert (after.labels == ID["mouth"]).any(axis=(1, 2)).all() and not (before.labels == ID["mouth"]).any()
    # The open mouth lies within mouth_half_width + lip across and |smile| + opening + lip up or down from the
    # corners' midpoint; plus the 0.5 px coverage ramp.
    p = before.params
    centre = (before.landmarks[:, LM["mouth_left"]] + before.landmarks[:, LM["mouth_right"]]) / 2
    reach = np.hypot(p["mouth_half_width"] + p["lip_thickness"],
                     np.abs(p["smile"]) + p["mouth_opening"].max(axis=1) + p["lip_thickness"])
    _changes_only_near(before, after, centre, reach * p["pose_scale"] * 32 + 1)


def test_closing_the_left_eye_changes_only_the_left_eye(faces64):
    both_open = np.flatnonzero(faces64.params["eye_open"].all(axis=1))[:12]
    before = _take(faces64, both_open)
    edited = {k: v.copy() for k, v in before.params.items()}
    edited["eye_open"][:, 0] = False
    after = tf.render_params(edited, 64)
    p = before.params
    reach = p["eye_radii"].max(axis=1) + tf.LID_HALF_THICKNESS + np.abs(p["lid_arch"])
    _changes_only_near(before, after, before.landmarks[:, LM["left_eye"]], reach * p["pose_scale"] * 32 + 1)
    for i in range(len(both_open)):  # the right eye keeps its white and pupil
        right = np.rint(after.landmarks[i, LM["right_pupil"]]).astype(int)
        assert after.labels[i, right[0], right[1]] == ID["pupil"]


def test_the_pose_moves_everything_together():
    # A shift of exactly 2 px to the right (4/64 in image half-sides) from a shift of 0: exact in float32, so the
    # picture moves by 2 columns bit for bit; the background gradient is vertical, so it is unchanged by the move.
    params = tf.sample_params(np.arange(200, 208))
    params["pose_shift"][:, 0] = 0
    before = tf.render_params(params, 64)
    after = tf.render_params(_edit(params, "pose_shift", np.stack([np.full(8, 0.0625), params["pose_shift"][:, 1]], 1)), 64)
    np.testing.assert_array_equal(after.images[:, :, 2:], before.images[:, :, :-2])
    np.testing.assert_array_equal(after.labels[:, :, 2:], before.labels[:, :, :-2])
    np.testing.assert_allclose(after.landmarks - before.landmarks, np.broadcast_to([0, 2], before.landmarks.shape),
                               atol=1e-4)
    # A quarter turn about the image centre (no shift): points turn with it, labels and image too.
    params["pose_shift"][:] = 0
    params["pose_angle"][:] = 0
    upright = tf.render_params(params, 64)
    turned = tf.render_params(_edit(params, "pose_angle", np.pi / 2), 64)
    row, col = upright.landmarks[..., 0], upright.landmarks[..., 1]
    np.testing.assert_allclose(turned.landmarks, np.stack([col, 63 - row], -1), atol=1e-4)  # clockwise on screen
    face = upright.labels != ID["background"]
    turned_back = np.rot90(turned.labels, k=1, axes=(1, 2))
    assert (turned_back[face] == upright.labels[face]).mean() > 0.99


def test_antialiased_edges_cover_the_shapes_area():
    # The nose (skin * NOSE_SHADE on skin, away from everything else) covers pi * rx * ry face units; summing each
    # pixel's darkening recovers that area in pixels, edge pixels contributing their fraction.
    params = tf.sample_params(np.arange(8))
    for name, value in {"skin_rgb": 250.0, "pose_scale": 1.0, "pose_shift": 0.013, "pose_angle": 0.5,
                        "nose_radii": [0.045, 0.035], "eye_spacing": 0.19, "mouth_open": False}.items():
        params[name][...] = value
    params["mouth_y"][:] = params["nose_y"] + 0.15
    faces = tf.render_params(params, 128)
    rows, cols = np.mgrid[:128, :128]
    tip = faces.landmarks[:, LM["nose_tip"]]
    near = np.hypot(rows - tip[:, 0, None, None], cols - tip[:, 1, None, None]) < 0.045 * 64 + 2.5
    assert (faces.labels[near] != ID["nose"]).any() and np.isin(faces.labels[near], [ID["skin"], ID["nose"]]).all()
    darkening = (250 - faces.images.astype(np.float64)).mean(-1) / (250 * (1 - tf.NOSE_SHADE))
    area = np.where(near, darkening, 0).sum(axis=(1, 2))
    np.testing.assert_allclose(area, np.pi * 0.045 * 0.035 * 64 ** 2, rtol=0.03)
    fraction = darkening[near]
    assert ((fraction > 0.1) & (fraction < 0.9)).sum() >= 8 * 8  # edge pixels are mixed: at least 8 a nose


def test_coverage_agrees_with_supersampling(monkeypatch):
    # The same faces drawn at 4x the resolution and box-downsampled 4x4: the analytic coverage at 64 px should
    # give nearly the same picture, and the class with the largest share of each pixel's 16 samples as its label.
    monkeypatch.setattr(tf, "RESOLUTIONS", tf.RESOLUTIONS + (256,))
    seeds = np.arange(300, 306)
    faces, fine = tf.render_batch(seeds, 64), tf.render_batch(seeds, 256)
    box = fine.images.astype(np.float64).reshape(6, 64, 4, 64, 4, 3).mean(axis=(2, 4))
    share = np.stack([(fine.labels == c).reshape(6, 64, 4, 64, 4).mean(axis=(2, 4))
                      for c in range(len(tf.CLASS_NAMES))], axis=-1)
    error = np.abs(faces.images - box)
    assert error.mean() < 0.4 and np.percentile(error, 99) < 8
    assert (faces.labels == share.argmax(-1)).mean() > 0.99
    clear = np.diff(np.sort(share, axis=-1)[..., -2:], axis=-1)[..., 0] >= 0.25  # no near-tie between two classes
    assert (faces.labels == share.argmax(-1))[clear].mean() > 0.999
    np.testing.assert_allclose(fine.landmarks, (faces.landmarks + 0.5) * 4 - 0.5, atol=1e-3)


def test_iterate_batches_is_deterministic_and_resumes_from_start():
    stream = tf.iterate_batches(seed=7, batch_size=3, resolution=32)
    batches = [next(stream) for _ in range(3)]
    _assert_same(next(tf.iterate_batches(seed=7, batch_size=3, resolution=32, start=2)), batches[2])
    _assert_same(batches[1], tf.render_batch(tf.batch_seeds(7, 1, 3), 32))
    seeds = np.concatenate([tf.batch_seeds(7, b, 3) for b in range(3)] + [tf.batch_seeds(8, 0, 3)])
    assert len(set(seeds.tolist())) == len(seeds)  # other batches, other streams: other faces
    assert not np.array_equal(next(tf.iterate_batches(seed=8, batch_size=3, resolution=32)).images,
                              batches[0].images)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="resolution"):
        tf.render_batch([1], 48)
    with pytest.raises(ValueError, match="non-negative"):
        tf.render_batch(np.array([1, -2]))
    with pytest.raises(ValueError, match="integers"):
        tf.sample_params(np.array([0.5]))
    params = tf.sample_params([1, 2])
    del params["smile"]
    with pytest.raises(ValueError, match="missing \\['smile'\\]"):
        tf.render_params(params, 32)
    params = tf.sample_params([1, 2])
    params["gaze"] = params["gaze"][:1]
    with pytest.raises(ValueError, match="gaze has shape"):
        tf.render_params(params, 32)
    with pytest.raises(ValueError):
        next(tf.iterate_batches(seed=-1, batch_size=2, resolution=32))
    assert dataclasses.is_dataclass(tf.ToyFaces)
