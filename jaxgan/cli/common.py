"""What the `jaxgan` commands share: the checkpoint argument (with `demo`), seed lists, the LPIPS and
segmentation-branch options, one decorator that reports the project's errors as one-line click errors, one way to
write a command's files atomically, and progress bars on stderr.

Commands import these; nothing here computes. This module imports no JAX (the heavy imports are inside the
functions), but the command modules read their defaults from the library's config dataclasses, which do.
"""

import functools
import sys
import warnings
from pathlib import Path

import click

from jaxgan.demo import DEMO_NAME, BundledModelMissing, bundled_checkpoint
from jaxgan.files import atomic_write
from jaxgan.hints import (ENCODER_HINT, LPIPS_ALEX_ENV, LPIPS_ENV, LPIPS_FILES_HINTS,  # noqa: F401 - the commands
                          SEG_HINT)  # import them from here


# ----------------------------------------------------------------------------------------------------------------
# Arguments and options


class CheckpointArgument(click.ParamType):
    """A jaxgan checkpoint directory on the command line, or `demo` for the bundled model."""

    name = "checkpoint"

    def convert(self, value, param, ctx):
        if isinstance(value, Path) and value.is_dir():
            return value
        if str(value) == DEMO_NAME:
            try:
                return bundled_checkpoint()
            except BundledModelMissing as e:
                self.fail(str(e), param, ctx)
        path = Path(value)
        if not path.exists():
            self.fail(f"{value!r} does not exist (give a jaxgan checkpoint directory, or 'demo' for the bundled "
                      "model)", param, ctx)
        if not path.is_dir():
            self.fail(f"{value!r} is a file, not a checkpoint directory; convert it first with `jaxgan convert`",
                      param, ctx)
        return path


CHECKPOINT = CheckpointArgument()


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """'0-7,12' -> [0, 1, ..., 7, 12] (ranges inclusive, as stylegan2-ada-pytorch's generate.py)."""
    seeds = []
    try:
        for part in text.split(","):
            lo, is_range, hi = part.strip().partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if is_range else [int(lo)])
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a seed list like '0-7,12'", param_hint=option) from None
    if not seeds or any(s < 0 or s >= 2 ** 32 for s in seeds):
        raise click.BadParameter("seeds must be integers in [0, 2**32)", param_hint=option)
    return seeds


def parse_vec2(text: str, option: str) -> tuple[float, float]:
    """'0.3,1' -> (0.3, 1.0), as gen_images.py's `parse_vec2`."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise click.BadParameter(f"{text!r} is not two numbers like '0.3,1'", param_hint=option) from None


def outdir_option(help_text: str = "Directory for the outputs (created if missing)."):
    return click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path), help=help_text)


LPIPS_HELP = ("The jaxgan LPIPS checkpoint (vgg trunk), made by `jaxgan convert vgg16-397923af.pth DST --kind "
              "lpips-vgg --lin vgg.pth`.")


def lpips_option(command=None, *, help_text: str = LPIPS_HELP):
    """The --lpips option: `@lpips_option`, or `@lpips_option(help_text=...)` for a command that reads another
    LPIPS than the vgg one."""
    if command is None:
        return functools.partial(lpips_option, help_text=help_text)
    return click.option("--lpips", "lpips_ckpt", type=click.Path(path_type=Path), envvar=LPIPS_ENV, show_envvar=True,
                        help=help_text)(command)


def seg_option(command):
    return click.option("--seg", "seg_ckpt", required=True, type=click.Path(exists=True, file_okay=False,
                                                                              path_type=Path),
                        help="The segmentation-branch checkpoint (`jaxgan convert ... --kind segbranch` or "
                             "`jaxgan editgan train-seg`).")(command)


# ----------------------------------------------------------------------------------------------------------------
# Errors


def user_error_types() -> tuple:
    """Exceptions that mean bad input, reported as one line rather than a traceback."""
    from checkpoints_convert.keymap import ConversionError
    from checkpoints_convert.torch_reader import CheckpointError
    from jaxgan.checkpoint import CheckpointFormatError
    return (CheckpointError, ConversionError, CheckpointFormatError, FileExistsError, ValueError)


def reports_errors(command):
    """Decorate a command's function: the project's input errors become one `Error:` line and exit status 1.

    In a job of several processes the line names the process, and a process whose peer is gone (a collective
    failed on a closed connection) says so and exits at once, without waiting for the runtime's shutdown."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from jaxgan import distributed
        try:
            return command(*args, **kwargs)
        except user_error_types() as e:
            if distributed.process_count() > 1:
                _stop_job(f"{distributed.describe()}: {e}" if not distributed.lost_peer(e) else _lost_peer_text(e))
            raise click.ClickException(str(e)) from None
        except click.ClickException as e:
            if distributed.process_count() > 1:
                _stop_job(f"{distributed.describe()}: {e.format_message()}")
            raise
        except Exception as e:  # noqa: BLE001 - only a lost peer is reported here; the rest keep their traceback
            if distributed.lost_peer(e):
                _stop_job(_lost_peer_text(e))
            raise
    return wrapper


def _lost_peer_text(error: BaseException) -> str:
    from jaxgan import distributed
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (f"{distributed.describe()}: another process of this job stopped (see its log); outputs written so far "
            f"are complete, rerun the same command to finish (with --skip-existing, generate and invert do only "
            f"what is missing). ({first[:200]})")


def _stop_job(message: str) -> None:
    """Report `message` as the command's error and leave now: the other processes may be gone, and the runtime's
    shutdown barrier would wait for them."""
    import os
    click.echo(f"Error: {message}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


DISTRIBUTED_HELP = ("Run as one job over several processes (JAX's distributed runtime): give all three, the same "
                    "--coordinator to every process and a --process-id from 0 to N-1; under SLURM's srun they are "
                    "read from the environment. See the README, 'Several hosts'.")


def distributed_options(command):
    """--coordinator, --num-processes, --process-id and --heartbeat-timeout for a batch command; the job is joined
    (`jaxgan.distributed.initialize`) before the command runs, so nothing has touched JAX yet."""
    from jaxgan.distributed import ENV_PREFIX, JobConfig

    @functools.wraps(command)
    def wrapper(*args, coordinator, num_processes, process_id, heartbeat_timeout, **kwargs):
        from jaxgan import distributed
        cfg = JobConfig(coordinator=coordinator, num_processes=num_processes, process_id=process_id,
                        heartbeat_timeout_s=heartbeat_timeout)
        try:
            distributed.initialize(cfg)
        except ValueError as e:
            raise click.UsageError(str(e)) from None
        return command(*args, **kwargs)
    options = [
        click.option("--coordinator", metavar="HOST:PORT", envvar=ENV_PREFIX + "COORDINATOR", show_envvar=True,
                     help="Process 0's address, which every process of the job connects to. " + DISTRIBUTED_HELP),
        click.option("--num-processes", type=click.IntRange(min=1), envvar=ENV_PREFIX + "NUM_PROCESSES",
                     show_envvar=True, help="Processes in the job."),
        click.option("--process-id", type=click.IntRange(min=0), envvar=ENV_PREFIX + "PROCESS_ID", show_envvar=True,
                     help="This process's place in the job, 0 ... N-1 (0 writes the summary)."),
        click.option("--heartbeat-timeout", type=click.IntRange(min=5), default=JobConfig.heartbeat_timeout_s,
                     show_default=True,
                     help="Seconds after which a silent process counts as dead and the others stop with an error."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


# ----------------------------------------------------------------------------------------------------------------
# Loading


def load_generator(ckpt: Path, kinds=None):
    """The image generator (StyleGAN2 or StyleGAN3; `kinds` to narrow it) of a checkpoint directory, stored as G by
    every jaxgan command that makes one. A StyleGAN3 generator's input transform is set to the identity, as
    gen_images.py and DragGAN's renderer set it when they load a network (generate's --translate / --rotate then
    set their own)."""
    from jaxgan.checkpoint import load_model
    from jaxgan.models import generators
    from jaxgan.models.kinds import GENERATOR_KINDS
    return generators.with_user_transform(load_model(ckpt, GENERATOR_KINDS if kinds is None else kinds, name="G"))


def load_lpips(path, net: str | None = "vgg"):
    """The LPIPS model of the checkpoint at `path`, with the trunk `net` ('vgg': the projector and the W+ embedding;
    'alex'; None: either); a one-line error naming the files to get when there is none or its trunk is another."""
    from jaxgan.checkpoint import CheckpointFormatError, ModelNotFound, load_model
    hint = LPIPS_FILES_HINTS[net or "vgg"]
    if path is None:
        raise click.ClickException(f"no LPIPS checkpoint given. {hint}")
    path = Path(path)
    if not path.exists():
        raise click.ClickException(f"the LPIPS checkpoint {path} does not exist. {hint}")
    if not path.is_dir():  # e.g. one of the .pth files themselves
        raise click.ClickException(f"{path} is a file, not a jaxgan LPIPS checkpoint directory. {hint}")
    try:
        model = load_model(path, "lpips")
    except ModelNotFound as e:
        raise click.ClickException(f"{e}. {hint}") from None
    except CheckpointFormatError:
        raise click.ClickException(f"{path} is not a jaxgan LPIPS checkpoint. {hint}") from None
    if net is not None and model.config.net != net:
        raise click.ClickException(f"the LPIPS checkpoint {path} has the {model.config.net} trunk; this needs LPIPS "
                                   f"({net}). {hint}")
    return model


def load_encoder(path):
    """EditGAN's encoder stored in the checkpoint at `path` (or None for None); a one-line error saying how to make
    one when the checkpoint holds none."""
    if path is None:
        return None
    from jaxgan.checkpoint import load_model
    return load_model(path, "editgan-encoder", hint=ENCODER_HINT)


def encoder_batch_norm(encoder_ckpt, given: str | None) -> str | None:
    """The encoder's BatchNorm mode: --encoder-bn when given, else the mode its checkpoint recommends (`"encoder":
    {"batch_norm": ...}` in its jaxgan.json; the bundled 32 px encoder's is 'running', since batch statistics of one
    32 px image are undefined), else None (the official batch statistics)."""
    if given is not None or encoder_ckpt is None:
        return given
    from jaxgan.checkpoint import read_sidecar
    return read_sidecar(encoder_ckpt).get("encoder", {}).get("batch_norm")


def encoder_options(command):
    """--encoder and --encoder-bn, for the commands that use EditGAN's encoder."""
    from jaxgan.models.encoder import BATCH_NORM_MODES, OFFICIAL_BATCH_NORM
    command = click.option(
        "--encoder-bn", type=click.Choice(BATCH_NORM_MODES), default=None,
        help="The encoder's BatchNorm: batch = the statistics of each image alone (EditGAN's behaviour, it never "
             "calls eval(); needs images above 32 px), running = the stored running statistics.  "
             f"[default: the encoder checkpoint's recommendation (the bundled one: running), else "
             f"{OFFICIAL_BATCH_NORM}]")(command)
    return click.option(
        "--encoder", "encoder_ckpt", type=CHECKPOINT, default=None,
        help=f"A jaxgan checkpoint holding EditGAN's encoder (model E; 'demo' for the bundled one): "
             f"{ENCODER_HINT}.")(command)


def load_images(paths, load):
    """[load(path) for path in paths], with warnings (e.g. a dropped alpha channel) shown as one-line notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return [load(path) for path in paths]
        finally:
            for warning in caught:
                click.echo(f"note: {warning.message}", err=True)


class LazyImages:
    """The images of `paths`, each read by `load(path)` when first indexed (then kept), with warnings shown as
    `load_images` shows them: a process of a multi-process job reads only the images it inverts."""

    def __init__(self, paths, load):
        self.paths, self.load, self.loaded = list(paths), load, {}

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        if i not in self.loaded:
            self.loaded[i] = load_images([self.paths[i]], self.load)[0]
        return self.loaded[i]


# ----------------------------------------------------------------------------------------------------------------
# Outputs and progress


def write_files(outdir: Path, files: dict) -> None:
    """Write {name: write(file)} into `outdir` (created if missing), each file atomically, in order; a file system
    error (a file where the folder should be, no permission, a full disk) becomes one `Error:` line."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        for name, write in files.items():
            atomic_write(outdir / name, write)
    except OSError as e:
        raise click.ClickException(f"cannot write the outputs: {e}") from None


def png(pixels):
    """A PNG writer for uint8 [H, W, C] pixels; a one-line error for a channel count PNG cannot hold."""
    from jaxgan.images import PNG_MODES, png_writer
    if pixels.shape[-1] not in PNG_MODES:
        raise click.ClickException(f"cannot write a PNG with {pixels.shape[-1]} channels; use --raw")
    return png_writer(pixels)


def npy(array):
    import numpy as np
    return lambda f: np.save(f, array)


def progress(total: int, label: str, **kwargs):
    """A click progress bar on stderr (stdout stays for results); in a job of several processes only process 0
    shows it (every process counts the whole job's progress)."""
    from jaxgan import distributed
    shown = distributed.process_count() == 1 or distributed.is_primary()
    return click.progressbar(length=max(total, 1), label=label, file=sys.stderr if shown else _Silent(), **kwargs)


class _Silent:
    """A text stream that drops what is written to it."""

    def write(self, text):
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"
