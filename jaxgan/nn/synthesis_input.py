"""StyleGAN3's synthesis input: Fourier features of a rotated and translated grid, as a pure function of its
parameters (NVlabs/stylegan3@c233a91, `training/networks_stylegan3.py` `SynthesisInput.forward`, :206-243).

From w, an affine layer (`affine`: FullyConnectedLayer(w_dim, 4), weight gain 1/sqrt(w_dim), bias gain 1) gives
t = (r_c, r_s, t_x, t_y), normalised by |(r_c, r_s)|: a rotation m_r = [[r_c, -r_s], [r_s, r_c]] and a translation
m_t = [[1, 0, -t_x], [0, 1, -t_y]], composed as m_r @ m_t @ `transform` (the user transform buffer, identity unless
set, e.g. by gen_images.py's --translate / --rotate). The C frequencies [C, 2] and phases [C] move with it
(phases += freqs @ T[:2, 2], freqs = freqs @ T[:2, :2]); amplitudes fall linearly to 0 between `bandwidth` and
sampling_rate / 2 (clamped to [0, 1]). The grid is `F.affine_grid` of diag(0.5 * size / sampling_rate) with
align_corners=False (pixel centres), and the features are sin(2 pi (grid . freqs + phases)) * amplitudes, mixed by
`weight` / sqrt(C). Output NHWC [N, H, W, C] float32 (the official NCHW permuted).
"""

import jax.numpy as jnp
import numpy as np

from jaxgan.nn.fully_connected import equalized_linear


def affine_grid(size: tuple[int, int], sampling_rate: float):
    """[H, W, 2] (x, y) of `F.affine_grid(theta, [1, 1, H, W], align_corners=False)` with
    theta = [[0.5 W / sr, 0, 0], [0, 0.5 H / sr, 0]]: pixel centres of [-1, 1] scaled by 0.5 * size / sr."""
    width, height = size
    xs = (2 * np.arange(width, dtype=np.float32) + 1) / width - 1
    ys = (2 * np.arange(height, dtype=np.float32) + 1) / height - 1
    sx, sy = np.float32(0.5 * width / sampling_rate), np.float32(0.5 * height / sampling_rate)
    grid = np.stack(np.broadcast_arrays(xs[None, :] * sx, ys[:, None] * sy), axis=-1)
    return jnp.asarray(grid, jnp.float32)


def input_transforms(affine_weight, affine_bias, transform, w):
    """The per-sample [N, 3, 3] transform m_r @ m_t @ transform from w [N, w_dim]."""
    t = equalized_linear(w, affine_weight, affine_bias)
    t = t / jnp.linalg.norm(t[:, :2], axis=1, keepdims=True)
    n = w.shape[0]
    zero, one = jnp.zeros((n,), jnp.float32), jnp.ones((n,), jnp.float32)
    m_r = jnp.stack([jnp.stack([t[:, 0], -t[:, 1], zero], -1), jnp.stack([t[:, 1], t[:, 0], zero], -1),
                     jnp.stack([zero, zero, one], -1)], axis=1)
    m_t = jnp.stack([jnp.stack([one, zero, -t[:, 2]], -1), jnp.stack([zero, one, -t[:, 3]], -1),
                     jnp.stack([zero, zero, one], -1)], axis=1)
    return m_r @ m_t @ transform[None]


def fourier_features(params: dict, w, *, size: tuple[int, int], sampling_rate: float, bandwidth: float):
    """The input features [N, H, W, C] for w [N, w_dim]. params: 'weight' [C, C], 'affine.weight' [4, w_dim],
    'affine.bias' [4], 'transform' [3, 3], 'freqs' [C, 2], 'phases' [C]; size (W, H) as the official `size`."""
    transforms = input_transforms(params["affine.weight"], params["affine.bias"], params["transform"],
                                  jnp.asarray(w, jnp.float32))
    freqs, phases = params["freqs"][None], params["phases"][None]               # [1, C, 2], [1, C]
    phases = phases + (freqs @ transforms[:, :2, 2:])[..., 0]                     # [N, C]
    freqs = freqs @ transforms[:, :2, :2]                                          # [N, C, 2]
    amplitudes = jnp.clip(1 - (jnp.linalg.norm(freqs, axis=2) - bandwidth) / (sampling_rate / 2 - bandwidth), 0, 1)
    grid = affine_grid(size, sampling_rate)                                        # [H, W, 2]
    x = jnp.einsum("hwk,nck->nhwc", grid, freqs) + phases[:, None, None, :]
    x = jnp.sin(x * np.float32(np.pi * 2)) * amplitudes[:, None, None, :]
    channels = params["weight"].shape[0]
    return x @ (params["weight"] / np.float32(np.sqrt(channels))).T
