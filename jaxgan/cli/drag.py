"""`jaxgan drag`: DragGAN point dragging, one session or a job file of many run together, by
`jaxgan.edit.drag.run_jobs`; inputs and outputs by `jaxgan.edit.drag_outputs`."""

from pathlib import Path

import click

from jaxgan.cli.common import (CHECKPOINT, distributed_options, load_generator, outdir_option, plural,
                               progress, reports_errors, write_files)
from jaxgan.edit.drag import OFFICIAL_FEATURE_IDX, OFFICIAL_R1, OFFICIAL_R2, RULE_RESOLUTION, DragJob

RADIUS_DEFAULT = (f"[default: recommended by the checkpoint, else the official {{official:g}} at {RULE_RESOLUTION} "
                  f"px and above, {{official:g}} * {RULE_RESOLUTION} / H below]")


@click.command("drag")
@click.argument("ckpt", type=CHECKPOINT)
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1),
              help="Start from w0 = mapping(np.random.RandomState(SEED).randn(1, z_dim)) (zero class label for "
                   "conditional networks), truncated by --trunc, as the DragGAN renderer.")
@click.option("--trunc", type=float, default=None,
              help=f"Truncation psi for --seed, and the default of job-file jobs with a seed.  [default: "
                   f"{DragJob.trunc:g}]")
@click.option("--ws", "ws_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Start from this latent instead: .npy of shape (num_ws, w_dim), (1, num_ws, w_dim) or (w_dim,), "
                   "e.g. the drag_ws.npy of an earlier drag or the NAME_ws.npy of `jaxgan invert`.")
@click.option("--points", help="Handle points as 'row,col;row,col' image pixels (row = y, col = x).")
@click.option("--targets", help="One target per handle point, same format.")
@click.option("--mask", "mask_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PNG of the image's size whose white pixels (> 127 in greyscale; alpha ignored) mark the region "
                   "that may move, as painted in the DragGAN GUI. Default: everything may move.")
@click.option("--space", type=click.Choice(["w+", "w"]), default=DragJob.space, show_default=True,
              help="Optimise the first 6 ws separately (w+) or one shared w.")
@click.option("--steps", type=click.IntRange(min=0), default=DragJob.steps, show_default=True,
              help="Cap on optimisation steps. The drag stops earlier once every handle is within max(2, 2*H/512) "
                   "px of its target, the official stop rule.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help=f"Adam step size.  [default: recommended by the checkpoint, else {DragJob.lr:g}]")
@click.option("--lambda-mask", type=click.FloatRange(min=0), default=DragJob.lambda_mask, show_default=True,
              help="Weight of the term that keeps the fixed (black) region of --mask unchanged.")
@click.option("--r1", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Motion-supervision patch radius in pixels at 512 px (scaled with the image).  "
                   + RADIUS_DEFAULT.format(official=OFFICIAL_R1))
@click.option("--r2", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Point-tracking search radius in pixels at 512 px (scaled with the image).  "
                   + RADIUS_DEFAULT.format(official=OFFICIAL_R2))
@click.option("--feature-idx", type=click.IntRange(min=0), default=None,
              help=f"Synthesis block whose features are supervised and tracked.  [default: recommended by the "
                   f"checkpoint, else the official {OFFICIAL_FEATURE_IDX} (the 6th block) on generators of 128 px and "
                   "above, the last block below]")
@click.option("--jobs", "jobs_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Run the sessions of this JSON job file together, batched and spread over the local devices "
                   "(schema in the README); outputs go to OUTDIR/<name>/. --trunc, --space, --steps, --lr and "
                   "--lambda-mask then give the defaults of the jobs.")
@outdir_option("Directory for drag.png, drag.gif, drag_ws.npy and drag.json (created if missing).")
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save the per-step trace as .npz: points, targets, losses, ws, stop, updated.")
@click.option("--steps-per-call", type=click.IntRange(min=1), default=1, show_default=True,
              help="Drag steps run inside one compiled call (fewer host round trips; the bar moves in these units).")
@distributed_options
@reports_errors
def drag_command(ckpt, seed, trunc, ws_file, points, targets, mask_file, space, steps, lr, lambda_mask, r1, r2,
                 feature_idx, jobs_file, outdir, trace_file, steps_per_call):
    """Drag handle points of a generated image to targets (DragGAN), with the generator of checkpoint CKPT.

    One session: give --seed (or --ws), --points and --targets, optionally --mask. Many sessions at once: --jobs.
    Follows the official DragGAN renderer step for step (defaults included, on generators of 256 px and above;
    smaller ones get the settings their checkpoint recommends, or settings scaled to their size). Writes into OUTDIR
    the final image drag.png, an animated drag.gif (handles red, targets blue), the final latent drag_ws.npy
    (num_ws, w_dim), which --ws and `jaxgan generate --ws` accept, and a summary drag.json (final points, distances,
    steps, why it stopped, settings). With --jobs and --coordinator / --num-processes / --process-id (or under
    srun) the sessions are shared out over several processes, each preparing, running and writing its own.

    \b
    Examples:
      jaxgan drag ffhq --seed 0 --points 250,200 --targets 250,260 --outdir out
      jaxgan drag ffhq --ws out/drag_ws.npy --points 300,256 --targets 280,256 --mask face.png --outdir out2
      jaxgan drag ffhq --jobs jobs.json --outdir many
    """
    import numpy as np

    from jaxgan import distributed
    from jaxgan.checkpoint import read_sidecar
    from jaxgan.edit import drag, drag_outputs

    if jobs_file is not None:
        extra = [name for name, value in (("--seed", seed), ("--ws", ws_file), ("--points", points),
                                          ("--targets", targets), ("--mask", mask_file), ("--trace", trace_file))
                 if value is not None]
        if extra:
            raise click.UsageError(f"{', '.join(extra)} cannot be combined with --jobs: each job gives its own "
                                   "(a job's \"trace\": true writes OUTDIR/<name>/drag_trace.npz)")
    else:
        if (seed is None) == (ws_file is None):
            raise click.UsageError("give exactly one of --seed and --ws (or a job file with --jobs)")
        if ws_file is not None and trunc is not None:
            raise click.UsageError("--trunc applies to --seed, not to --ws")
        if points is None or targets is None:
            raise click.UsageError("--points and --targets are required (or a job file with --jobs)")
    G = load_generator(ckpt)
    given = {"r1": r1, "r2": r2, "feature_idx": feature_idx, "lr": lr}
    settings = {**drag.recommended_settings(read_sidecar(ckpt)),
                **{key: value for key, value in given.items() if value is not None}}
    session_defaults = dict(trunc=DragJob.trunc if trunc is None else trunc, space=space, steps=steps,
                            lr=settings.pop("lr", DragJob.lr), lambda_mask=lambda_mask)
    if jobs_file is not None:
        jobs = drag_outputs.read_jobs(jobs_file, session_defaults)
    else:
        point_list = drag_outputs.parse_points(points, "--points")
        target_list = drag_outputs.parse_points(targets, "--targets")
        if len(point_list) != len(target_list):
            raise ValueError(f"{len(point_list)} points but {len(target_list)} targets: give one target per point")
        jobs = [drag_outputs.Job(name="", points=point_list, targets=target_list, seed=seed, ws=ws_file,
                                 mask=mask_file, **session_defaults)]
    cfg = drag.DragConfig.for_generator(G.config, max_points=max(len(job.points) for job in jobs), **settings)
    drag_jobs = []
    for job in jobs:  # every job is read and checked before anything runs
        try:
            drag_jobs.append(job.load(G.config))
        except ValueError as e:
            raise ValueError(f"job {job.name!r}: {e}" if job.name else str(e)) from None
        note = drag_outputs.mask_note(drag_jobs[-1].mask)
        if note:
            click.echo(f"note: {f'job {job.name!r}: ' if job.name else ''}{note}", err=True)
    mine = drag.owned_jobs(len(drag_jobs))  # all jobs, unless this is one process of several
    sessions = drag.prepare_jobs(G, cfg, [drag_jobs[i] for i in mine],
                                 [jobs[i].name for i in mine])  # refusals come before the bar
    count = len(jobs)
    total = max(job.steps for job in jobs) + 1  # the step cap plus the closing observation
    label = "dragging" if count == 1 else f"dragging {count} sessions"
    with progress(total, label, item_show_func=lambda x: x) as bar:
        def on_step(done, _):
            bar.update(min(steps_per_call, total - bar.pos), f"{done}/{count} finished" if count > 1 else None)
        outcomes = drag.run_jobs(G, cfg, drag_jobs, sessions=sessions, steps_per_call=steps_per_call,
                                 on_step=on_step)
        bar.update(total - bar.pos)  # sessions that reach their targets end early

    summary_settings = {"r1": cfg.r1, "r2": cfg.r2, "feature_idx": cfg.feature_idx, "noise_mode": cfg.noise_mode,
                        "patch_radius": cfg.patch_radius, "search_radius": cfg.search_radius,
                        "stop_distance": cfg.stop_distance}
    for job, outcome in zip([jobs[i] for i in mine], outcomes):
        result = drag_outputs.DragResult.of(job, outcome)
        if trace_file is not None:
            arrays = drag_outputs.trace_arrays(result)
            write_files(trace_file.parent, {trace_file.name: lambda f: np.savez(f, **arrays)})
        write_files(outdir / job.name if job.name else outdir,
                    drag_outputs.output_files(result, checkpoint=ckpt, settings=summary_settings,
                                              trace_file=trace_file))
        click.echo(drag_outputs.result_line(result))
    who = distributed.message_prefix()
    click.echo(f"{who}wrote {outdir}" + (f" ({plural(len(mine), 'session')})" if jobs_file is not None else "")
               + (f" and {trace_file}" if trace_file is not None else ""))
