"""Latent files: the one rule by which every jaxgan command reads a `.npy` of intermediate latents (W / W+).

jaxgan writes latents as W+ arrays: one image as (num_ws, w_dim) (`jaxgan invert`'s NAME_ws.npy, `jaxgan drag`'s
drag_ws.npy), several as (N, num_ws, w_dim) (`jaxgan editgan`'s ws.npy, ws_edited.npy, ws_after.npy). Other tools
write (1, num_ws, w_dim) (DragGAN's and PTI's saved tensors) or plain w vectors, (N, w_dim) or (w_dim,), one w for
every layer. Every command reads all of these back as the same images, by this rule on the array's shape:

  (N, num_ws, w_dim)   N W+ latents
  (N, 1, w_dim)        N w vectors, each repeated on every layer
  (num_ws, w_dim)      ONE W+ latent: what jaxgan writes for one image
  (N, w_dim)           N w vectors (N != num_ws), each repeated on every layer
  (w_dim,)             one w vector, repeated on every layer

The one ambiguous case is a 2-D array with num_ws rows: it is one W+ latent, never num_ws w vectors. To give exactly
num_ws w vectors, save them as (num_ws, 1, w_dim). Anything else is refused with a message that lists these shapes.
Latents must be finite floats; they are returned as float32.
"""

from pathlib import Path

import numpy as np


def accepted_shapes(num_ws: int, w_dim: int) -> str:
    return (f"(N, {num_ws}, {w_dim}) or (N, 1, {w_dim}) for N latents, ({num_ws}, {w_dim}) for one W+ latent, "
            f"(N, {w_dim}) or ({w_dim},) for w vectors repeated on every layer")


def as_latents(ws, num_ws: int, w_dim: int, *, source: str = "the latents") -> np.ndarray:
    """An array of latents in any accepted shape -> float32 [N, num_ws, w_dim], by the module's rule."""
    ws = np.asarray(ws)
    shape = ws.shape
    if not np.issubdtype(ws.dtype, np.floating):
        raise ValueError(f"{source} must hold floats, found dtype {ws.dtype}")
    if ws.ndim == 1 and shape == (w_dim,):
        ws = ws[None, None]
    elif ws.ndim == 2 and shape == (num_ws, w_dim):
        ws = ws[None]  # one W+ latent, as jaxgan writes it (also when num_ws == 1)
    elif ws.ndim == 2 and shape[1] == w_dim:
        ws = ws[:, None]
    if ws.ndim != 3 or ws.shape[2] != w_dim or ws.shape[1] not in (1, num_ws):
        raise ValueError(f"{source} has shape {shape}; this generator takes {accepted_shapes(num_ws, w_dim)}")
    if not np.all(np.isfinite(ws)):
        raise ValueError(f"{source} holds NaN or infinite values")
    return np.ascontiguousarray(np.broadcast_to(ws, (ws.shape[0], num_ws, w_dim)), np.float32)


def read_latents(path, num_ws: int, w_dim: int) -> np.ndarray:
    """The latents of a .npy file -> float32 [N, num_ws, w_dim] (N >= 1), by the module's rule."""
    try:
        ws = np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read the latents {path}: {e}") from None
    ws = as_latents(ws, num_ws, w_dim, source=f"the latent file {path}")
    if len(ws) == 0:
        raise ValueError(f"the latent file {path} holds no latents")
    return ws


def read_latent(path, num_ws: int, w_dim: int) -> np.ndarray:
    """Exactly one latent from a .npy file -> float32 [num_ws, w_dim]; a file of several is refused."""
    ws = read_latents(path, num_ws, w_dim)
    if len(ws) != 1:
        raise ValueError(f"the latent file {path} holds {len(ws)} latents; one is needed here (save one of them, "
                         f"e.g. np.save('one.npy', np.load('{Path(path).name}')[i]))")
    return ws[0]
