"""The drag settings a generator gets by default (jaxgan.edit.drag.default_tracking, recommended_settings,
DragConfig.for_generator): the official values at 256 px and above, radii that keep their pixel size below, the
checkpoint's own recommendation first, explicit values checked."""

import pytest

from jaxgan.edit import drag
from jaxgan.models import stylegan2


def _generator(resolution: int) -> stylegan2.GeneratorConfig:
    blocks = len(stylegan2.resolutions_up_to(resolution))
    return stylegan2.GeneratorConfig(z_dim=8, c_dim=0, w_dim=8, img_resolution=resolution, img_channels=3,
                                     channels=(8,) * blocks)


# (resolution, r1, r2, feature_idx, patch radius px, search radius px), worked out by hand from the rule
@pytest.mark.parametrize("resolution,r1,r2,feature_idx,patch,search", [
    (1024, 3.0, 12.0, 5, 6, 24),   # official: round(3 / 512 * 1024) = 6, round(12 / 512 * 1024) = 24
    (512, 3.0, 12.0, 5, 3, 12),
    (256, 3.0, 12.0, 5, 2, 6),     # round(1.5) = 2 (Python rounds half to even), round(6) = 6
    (128, 6.0, 24.0, 5, 2, 6),     # 3 * 256 / 128 = 6 -> 6 / 512 * 128 = 1.5 -> 2 px
    (64, 12.0, 48.0, 4, 2, 6),     # 5 blocks (4..64): the last is index 4
    (32, 24.0, 96.0, 3, 2, 6),     # the bundled model's size: 4 blocks
])
def test_default_tracking_follows_the_rule(resolution, r1, r2, feature_idx, patch, search):
    cfg = drag.DragConfig.for_generator(_generator(resolution))
    assert (cfg.r1, cfg.r2, cfg.feature_idx) == (r1, r2, feature_idx)
    assert (cfg.patch_radius, cfg.search_radius) == (patch, search)


def test_explicit_values_win_and_are_still_checked():
    cfg = drag.DragConfig.for_generator(_generator(64), r1=16.0, feature_idx=2)
    assert (cfg.r1, cfg.r2, cfg.feature_idx) == (16.0, 48.0, 2)
    with pytest.raises(ValueError, match="r1=3 .* rounds to 0 px at 64 px"):
        drag.DragConfig.for_generator(_generator(64), r1=3.0)
    with pytest.raises(ValueError, match="feature_idx 5 is out of range"):
        drag.DragConfig.for_generator(_generator(32), feature_idx=5)


def test_checkpoint_recommendations_come_from_its_drag_or_demo_section():
    demo_job = {"seed": 0, "points": "20,10", "targets": "20,6", "r1": 16.0, "r2": 48.0, "feature_idx": 2,
                "lr": 0.01, "steps": 60}
    assert drag.recommended_settings({"demo": {"drag": demo_job}}) == {"r1": 16.0, "r2": 48.0, "feature_idx": 2,
                                                                        "lr": 0.01}
    assert drag.recommended_settings({"drag": {"r2": 30.0}, "demo": {"drag": demo_job}}) == {"r2": 30.0}
    assert drag.recommended_settings({"models": {}}) == {}
