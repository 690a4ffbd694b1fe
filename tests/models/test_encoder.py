"""The encoder's configurable head depth (`EncoderConfig.head_convs`): the official 5, 6, 7 convs reach 1 x 1 for
images up to 512 px; shallower heads for small images, with their own size limit (parity with the official network:
test_encoder_parity.py)."""

import jax
import jax.numpy as jnp
import pytest

from jaxgan.models import encoder
from jaxgan.nn.leaves import selected_names

SMALL = dict(num_ws=8, w_dim=6, base_width=4, stage_blocks=(1, 1, 1, 1), fpn_dim=8, head_dim=8)


def test_max_size_follows_the_head_depth():
    assert encoder.EncoderConfig().max_size == 512
    assert encoder.EncoderConfig(head_convs=(1, 2, 3)).max_size == 32       # 16*2, 8*4, 4*8
    assert encoder.EncoderConfig(head_convs=(2, 2, 3)).max_size == 32       # the smallest of 64, 32, 32
    with pytest.raises(ValueError, match="three positive conv counts"):
        encoder.EncoderConfig(head_convs=(1, 2))


def test_shallow_heads_encode_small_images_and_refuse_larger_ones():
    E = encoder.init_encoder(encoder.EncoderConfig(**SMALL, head_convs=(1, 2, 3)), jax.random.key(0))
    names = selected_names(E.params, lambda parts: parts[0] in ("course_styles", "medium_styles", "fine_styles"))
    convs = {g: sorted({n.split(".")[3] for n in names if n.startswith(f"{g}.0.convs.")})
             for g in ("course_styles", "medium_styles", "fine_styles")}
    assert convs == {"course_styles": ["0"], "medium_styles": ["0", "2"], "fine_styles": ["0", "2", "4"]}
    images = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3), jnp.float32, -1, 1)
    ws = encoder.encode(E, images)
    assert ws.shape == (2, 8, 6) and bool(jnp.all(jnp.isfinite(ws)))
    with pytest.raises(ValueError, match="at most 32 x 32 pixels"):
        encoder.encode(E, jnp.zeros((2, 64, 64, 3)))
