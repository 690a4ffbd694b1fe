"""The DragGAN trace fixtures (../shared/fixtures/draggan_trace_*.npz): generator, settings and a ready session."""

import functools
import json

import jax
import numpy as np

from checkpoints_convert.stylegan2_pkl import convert_state_dict
from jaxgan.edit import drag
from tests.conftest import fixture_path

TRACE_LOW_LR = "draggan_trace_lr1e-3.npz"
TRACE_HIGH_LR = "draggan_trace_lr5e-2.npz"


@functools.cache
def trace(name: str):
    """(generator, arrays, settings) of one official trace; the generator comes from its `param/` state dict."""
    data = np.load(fixture_path(name))
    meta = json.loads(str(data["meta"]))
    tensors = {key[len("param/"):]: data[key] for key in data.files if key.startswith("param/")}
    G = convert_state_dict("Generator", meta["init_kwargs"], tensors, which=name)
    return G, data, meta["settings"]


def drag_config(G, **overrides):
    return drag.DragConfig.for_generator(G.config, **{"max_points": 4, **overrides})


def fixture_session(name: str, cfg, **overrides):
    G, data, settings = trace(name)
    kwargs = dict(mask=data["mask"], lr=settings["lr"], lambda_mask=settings["lambda_mask"],
                  max_steps=len(data["points"]))
    kwargs.update(overrides)
    return drag.new_session(cfg, data["w0"], data["init_points"], data["targets"], **kwargs)


@functools.cache
def jitted_step():
    return jax.jit(drag.drag_step, static_argnames="cfg")
