"""The models a server holds, loaded once at start, and the stateless programs it runs on them.

Clients name models; they never send paths. Each `ServedModel` is a generator with its checkpoint's sidecar (for
the drag settings it recommends), optionally the LPIPS networks (shared by all models: vgg for inversion, alex for
PTI) and what the model can do (`capabilities`). A PTI session adds the generator it tuned as a model of its own
(`derived_from` names the model it came from) for as long as it or a session using it lives.
"""

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import parallel
from jaxgan.edit import drag
from jaxgan.models import generators
from jaxgan.models.kinds import GENERATOR_KINDS, kind_of
from jaxgan.nn.split import SplitModel


@dataclasses.dataclass
class ServedModel:
    name: str
    G: SplitModel
    sidecar: dict
    checkpoint: str
    max_points: int
    lpips: SplitModel | None = None
    seg: SplitModel | None = None  # EditGAN's segmentation branch for this generator
    lpips_alex: SplitModel | None = None  # PTI's tuning loss (with lpips: PTI inversion)
    derived_from: str | None = None  # a PTI-tuned generator: the served model it was tuned from

    @property
    def capabilities(self) -> list[str]:
        caps = ["generate", "drag"] + (["invert", "lpips"] if self.lpips is not None else [])
        if self.lpips is not None and self.lpips_alex is not None:
            caps.append("pti")
        if self.seg is not None:
            caps += ["segment"] + (["editgan"] if self.lpips is not None else [])
        return caps

    def drag_defaults(self) -> dict:
        """What `jaxgan drag` would use on this model: the recommended or rule-based tracking settings."""
        cfg = drag.DragConfig.for_generator(self.G.config, **{
            k: v for k, v in drag.recommended_settings(self.sidecar).items() if k != "lr"})
        return {"r1": cfg.r1, "r2": cfg.r2, "feature_idx": cfg.feature_idx,
                "lr": drag.recommended_settings(self.sidecar).get("lr", drag.DragJob.lr),
                "space": drag.DragJob.space, "max_steps": drag.DragJob.steps, "lambda_mask": drag.DragJob.lambda_mask,
                "trunc": drag.DragJob.trunc, "max_points": self.max_points}

    def hints(self) -> dict:
        """{capability: how to turn it on} for what this model cannot do yet (the editor shows these)."""
        from jaxgan.hints import LPIPS_ALEX_FILES_HINT, LPIPS_FILES_HINT, SEG_HINT
        out = {}
        if self.lpips is None:
            out["invert"] = f"Inversion needs an LPIPS network: restart jaxgan serve with --lpips. {LPIPS_FILES_HINT}"
        if self.lpips is None or self.lpips_alex is None:
            out["pti"] = ("PTI (tuning the generator on the photo) needs LPIPS (vgg) and LPIPS (alex): restart jaxgan "
                          f"serve with --lpips and --lpips-alex. {LPIPS_ALEX_FILES_HINT}")
        if self.seg is None and kind_of(self.G.config).name != "stylegan2-generator":
            out["editgan"] = (f"EditGAN's segmentation branch reads StyleGAN2 features; {self.name} is a "
                              f"{kind_of(self.G.config).description}")
        elif self.seg is None:
            out["editgan"] = (f"EditGAN needs a segmentation branch: restart jaxgan serve with --seg "
                              f"{self.name}=SEG_CKPT ({SEG_HINT})")
        elif self.lpips is None:
            out["editgan"] = f"EditGAN's edits need an LPIPS network: restart jaxgan serve with --lpips. {LPIPS_FILES_HINT}"
        return out

    def describe(self) -> dict:
        g = self.G.config
        out = {"name": self.name, "kind": kind_of(g).name, "resolution": g.img_resolution, "num_ws": g.num_ws,
               "w_dim": g.w_dim, "c_dim": g.c_dim, "img_channels": g.img_channels,
               "capabilities": self.capabilities, "drag_defaults": self.drag_defaults(), "hints": self.hints()}
        if self.lpips is not None:
            from jaxgan.edit.invert import EmbedConfig, ProjectorConfig
            out["invert_defaults"] = {"space": "w", "steps": {"w": ProjectorConfig.steps, "w+": EmbedConfig.steps}}
        if "pti" in self.capabilities:
            from jaxgan.edit.pti import PTIConfig
            out["pti_defaults"] = {"space": PTIConfig.pivot_space, "pivot_steps": PTIConfig.pivot_steps,
                                   "tune_steps": PTIConfig.tune_steps, "lpips_threshold": PTIConfig.lpips_threshold}
        if self.derived_from is not None:
            out["derived_from"] = self.derived_from
        if self.seg is not None:
            from jaxgan.edit import editgan, editgan_outputs
            n = self.seg.config.num_classes
            out["segmentation"] = {"num_classes": n, "palette": editgan_outputs.palette(n).tolist(),
                                   "edit_defaults": {"steps": editgan.EditConfig.steps,
                                                     "dilation": editgan.EditConfig.dilation}}
        return out


def _generate_one(G: SplitModel, problem: dict):
    """One image from a seed's z (mapped, truncated by the row's psi) or from a latent; ws and uint8 pixels."""
    if "ws" in problem:
        ws = problem["ws"][None]
    else:
        ws = generators.mapping(G, problem["z"][None], problem["c"][None], truncation_psi=problem["trunc"])
    image = generators.synthesis(G, ws, noise_mode="const")[0]
    pixels = jnp.clip(image * jnp.float32(127.5) + jnp.float32(128), 0, 255).astype(jnp.uint8)
    return {"ws": ws[0], "pixels": pixels}


@functools.cache
def _generation_program(mesh):
    def per_device(G, problems):
        return jax.vmap(lambda p: _generate_one(G, p))(problems)
    return parallel.shard_problems(per_device, mesh)


def generation_runner(G: SplitModel, devices: list):
    """`run(problems) -> {"ws", "pixels"}` for a padded chunk of generation problems (see `generation_rows`)."""
    def run(problems):
        n = jax.tree_util.tree_leaves(problems)[0].shape[0]
        count = max(d for d in range(1, min(n, len(devices)) + 1) if n % d == 0)
        return _generation_program(parallel.data_mesh(devices[:count]))(G, problems)
    return run


def generation_rows(G: SplitModel, *, seeds=None, trunc: float = 1.0, ws=None) -> dict[str, Any]:
    """The rows of a generate request: z as `RandomState(seed).randn(1, z_dim)` (generate.py and the DragGAN
    renderer), a zero label and psi per row; or latents [N, num_ws, w_dim]."""
    g = G.config
    if ws is not None:
        return {"ws": np.asarray(ws, np.float32)}
    z = np.concatenate([np.random.RandomState(s).randn(1, g.z_dim) for s in seeds]).astype(np.float32)
    return {"z": z, "c": np.zeros((len(seeds), g.c_dim), np.float32),
            "trunc": np.full((len(seeds),), trunc, np.float32)}


def load_models(checkpoints: dict, *, lpips_path=None, lpips_alex_path=None, seg: dict | None = None,
                max_points: int = 8) -> dict[str, ServedModel]:
    """{name: checkpoint directory} -> {name: ServedModel}, every generator loaded once; `lpips_path` gives the
    LPIPS network that inversion and EditGAN need (None: neither), `lpips_alex_path` the LPIPS (alex) that PTI
    tunes with (PTI needs both); `seg` {name: segmentation-branch checkpoint}."""
    from jaxgan.checkpoint import load_model, read_sidecar
    from jaxgan.hints import SEG_HINT
    from jaxgan.models import segbranch
    seg = seg or {}
    unknown = sorted(set(seg) - set(checkpoints))
    if unknown:
        raise ValueError(f"--seg names {unknown}, which are not served models ({sorted(checkpoints)})")
    lpips = None if lpips_path is None else load_model(lpips_path, "lpips")
    if lpips is not None and lpips.config.net != "vgg":  # the projector and EditGAN's losses are LPIPS (vgg)
        from jaxgan.hints import LPIPS_FILES_HINT
        raise ValueError(f"the LPIPS checkpoint {lpips_path} has the {lpips.config.net} trunk; inversion and EditGAN "
                         f"need LPIPS (vgg). {LPIPS_FILES_HINT}")
    lpips_alex = None if lpips_alex_path is None else load_model(lpips_alex_path, "lpips")
    if lpips_alex is not None and lpips_alex.config.net != "alex":
        from jaxgan.hints import LPIPS_ALEX_FILES_HINT
        raise ValueError(f"the LPIPS checkpoint {lpips_alex_path} has the {lpips_alex.config.net} trunk; PTI tunes "
                         f"with LPIPS (alex). {LPIPS_ALEX_FILES_HINT}")
    models = {}
    for name, path in checkpoints.items():
        G = generators.with_user_transform(load_model(path, GENERATOR_KINDS, name="G"))  # as on the CLI
        S = None
        if name in seg:
            if kind_of(G.config).name != "stylegan2-generator":
                raise ValueError(f"--seg {name}=...: EditGAN's segmentation branch reads StyleGAN2 features; "
                                 f"{name} is a {kind_of(G.config).description}")
            S = load_model(seg[name], "segbranch", hint=SEG_HINT)
            segbranch.check_compatible(segbranch.FeatureLayout.of_generator(G.config), S.config)
        models[name] = ServedModel(name=name, G=G, sidecar=read_sidecar(path), checkpoint=str(path),
                                   max_points=max_points, lpips=lpips, seg=S, lpips_alex=lpips_alex)
    return models


@functools.cache
def _lpips_program():
    from jaxgan.models import lpips as lpips_model
    return jax.jit(lambda model, pair: lpips_model.lpips_distance(model, pair["a"], pair["b"]))


def lpips_runner(lpips: SplitModel):
    """`run({"a", "b"}) -> distances` for a padded chunk of same-size image pairs in [-1, 1]."""
    return lambda pairs: {"distance": _lpips_program()(lpips, pairs)}
