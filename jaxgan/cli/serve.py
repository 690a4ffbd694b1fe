"""`jaxgan serve`: load models once and serve batched editing sessions over HTTP (`jaxgan.serve`)."""

import re
from pathlib import Path

import click

from jaxgan.cli.common import CHECKPOINT, LPIPS_ALEX_ENV, LPIPS_ENV, reports_errors
from jaxgan.demo import BUNDLED_DIR, DEMO_NAME
from jaxgan.serve.config import ServeConfig

TOKEN_ENV = "JAXGAN_TOKEN"
DEFAULTS = ServeConfig()
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def model_names(first: Path, others: tuple) -> dict:
    """CKPT and NAME=CKPT arguments -> {name: checkpoint directory}; the first is named `demo` (the bundled
    model) or after its directory."""
    models = {DEMO_NAME if first.resolve() == BUNDLED_DIR.resolve() else first.resolve().name: first}
    for entry in others:
        name, sep, path = entry.partition("=")
        if not sep or not _NAME.fullmatch(name):
            raise click.BadParameter(f"{entry!r} is not NAME=CKPT (NAME of letters, digits, '.', '_', '-')",
                                     param_hint="MODELS")
        if name in models:
            raise click.BadParameter(f"the model name {name!r} is given twice", param_hint="MODELS")
        models[name] = CHECKPOINT.convert(path, None, None)
    return models


@click.command("serve")
@click.argument("ckpt", type=CHECKPOINT)
@click.argument("models", nargs=-1, metavar="[NAME=CKPT]...")
@click.option("--lpips", "lpips_ckpt", type=click.Path(exists=True, file_okay=False, path_type=Path), envvar=LPIPS_ENV,
              show_envvar=True, help="LPIPS checkpoint (`jaxgan convert ... --kind lpips-vgg`); enables inversion.")
@click.option("--lpips-alex", "lpips_alex_ckpt", type=click.Path(exists=True, file_okay=False, path_type=Path),
              envvar=LPIPS_ALEX_ENV, show_envvar=True,
              help="LPIPS (alex) checkpoint (`jaxgan convert ... --kind lpips-alex`); with --lpips enables PTI "
                   "inversion (the tuned generator is then served as a model of its own).")
@click.option("--seg", "seg_entries", multiple=True, metavar="NAME=SEG_CKPT",
              help="EditGAN segmentation branch of model NAME (repeatable); with --lpips enables EditGAN editing.")
@click.option("--host", default=DEFAULTS.host, show_default=True,
              help="Address to listen on. Anything but loopback needs --token (or --insecure).")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULTS.port, show_default=True)
@click.option("--token", envvar=TOKEN_ENV, show_envvar=True,
              help="Clients must send 'Authorization: Bearer TOKEN' (WebSockets: ?token=TOKEN).")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback --host without a token.")
@click.option("--cors", "cors_origins", multiple=True, help="Allow cross-origin requests from this origin (repeatable).")
@click.option("--max-sessions", type=click.IntRange(min=1), default=None,
              help="Session slots.  [default: from XLA's memory analysis of the drag step and the device memory]")
@click.option("--session-ttl", type=click.FloatRange(min=0, min_open=True), default=DEFAULTS.session_ttl,
              show_default=True, help="Seconds an idle session (not running, untouched by clients) is kept.")
@click.option("--max-batch", type=click.IntRange(min=1), default=DEFAULTS.max_batch, show_default=True,
              help="Largest number of sessions in one compiled step (a power of two).")
@click.option("--max-steps", type=click.IntRange(min=1), default=DEFAULTS.max_steps, show_default=True,
              help="Cap on a session's steps.")
@click.option("--max-points", type=click.IntRange(min=1), default=DEFAULTS.max_points, show_default=True,
              help="Cap on a drag's handle points.")
@click.option("--warmup", is_flag=True, help="Compile and time every batch size at start (slower start, no "
                                               "compile pauses later).")
@reports_errors
def serve_command(ckpt, models, lpips_ckpt, lpips_alex_ckpt, seg_entries, host, port, token, insecure, cors_origins,
                  max_sessions, session_ttl, max_batch, max_steps, max_points, warmup):
    """Serve the generator of CKPT (and NAME=CKPT ...) over HTTP: DragGAN sessions batched into one compiled step,
    generation, with --lpips inversion (with --lpips-alex too, PTI), and with --seg EditGAN segmentation and
    editing. Clients name models; they never send paths.

    \b
    Examples:
      jaxgan serve demo                                  # http://127.0.0.1:8000, API docs at /docs
      jaxgan serve ffhq cats=afhqcat --lpips lpips-vgg --warmup
      jaxgan serve ffhq --lpips lpips-vgg --lpips-alex lpips-alex   # photo upload by PTI
      jaxgan serve car --seg car=car-seg --lpips lpips-vgg      # EditGAN
      JAXGAN_TOKEN=secret jaxgan serve ffhq --host 0.0.0.0
    """
    from jaxgan.serve.engine import Engine
    from jaxgan.serve.models import load_models
    from jaxgan.serve.server import serve

    cfg = ServeConfig(host=host, port=port, token=token or None, insecure=insecure, cors_origins=tuple(cors_origins),
                      max_sessions=max_sessions, session_ttl=session_ttl, max_batch=max_batch, max_steps=max_steps,
                      max_points=max_points, warmup=warmup)
    cfg.check_exposure()
    names = model_names(ckpt, models)
    seg = {}
    for entry in seg_entries:
        name, sep, path = entry.partition("=")
        if not sep or name not in names:
            raise click.BadParameter(f"{entry!r} is not NAME=SEG_CKPT for a served model ({', '.join(names)})",
                                     param_hint="--seg")
        seg[name] = CHECKPOINT.convert(path, None, None)
    loaded = load_models(names, lpips_path=lpips_ckpt, lpips_alex_path=lpips_alex_ckpt, seg=seg,
                         max_points=max_points)
    serve(Engine(loaded, cfg), cfg)
