"""Mutation check: do the tests catch one-line bugs in the losses, schedules, architectures and converters?

Each mutation below replaces one exact piece of text in one source file. For each, the script copies the project
(the files git tracks) into a temporary folder with `../shared` beside it, applies the mutation there, runs the tests
that cover that code, and records whether they failed ("killed") or passed ("survived"). The working tree is never
touched. Exit status 1 if any mutation survives or no longer applies (its text changed: update the list).

    python scripts/mutation_check.py                   # all mutations (tens of minutes on a 2-core CPU)
    python scripts/mutation_check.py --only train      # the mutations whose name contains "train"
    python scripts/mutation_check.py --list            # print the list and exit

Not part of CI (too slow); prints one JSON object with the machine, each mutation's outcome and time.
"""

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Mutation:
    name: str
    file: str          # relative to the project root
    old: str           # must occur exactly once in the file
    new: str
    tests: tuple       # pytest node ids or files, relative to the project root


MUTATIONS = (
    # The three one-line bugs of issue 22, each of which passed the whole suite before it.
    Mutation("train: D fake-term sign", "jaxgan/train/stylegan2.py",
             "softplus(gen_logits)", "softplus(-gen_logits)", ("tests/train/test_stylegan2_losses.py",)),
    Mutation("editgan: RGB weight 15 -> 1.5", "jaxgan/edit/editgan.py",
             "rgb_weight: float = 15.0", "rgb_weight: float = 1.5", ("tests/edit/test_editgan.py",)),
    Mutation("invert: W+ LPIPS weight 10 -> 1", "jaxgan/edit/invert.py",
             "    lpips_weight: float = 10.0\n    mse_weight: float = 1.0", "    lpips_weight: float = 1.0\n    mse_weight: float = 1.0",
             ("tests/edit/test_invert_official.py",)),
    # EditGAN's edit and refinement losses (tests/edit/test_editgan.py) and the inversion steps against the official
    # traces (tests/edit/test_invert_official.py).
    Mutation("editgan: outside mask from the undilated region", "jaxgan/edit/editgan.py",
             "outside=(~dilated).astype(np.float32)", "outside=(~regions).astype(np.float32)", ("tests/edit/test_editgan.py",)),
    Mutation("editgan: MSE weight 5 -> 1", "jaxgan/edit/editgan.py",
             "mse_weight: float = 5.0", "mse_weight: float = 1.0", ("tests/edit/test_editgan.py",)),
    Mutation("editgan: CE weight 1 -> 5", "jaxgan/edit/editgan.py",
             "ce_weight: float = 1.0", "ce_weight: float = 5.0", ("tests/edit/test_editgan.py",)),
    Mutation("editgan: LPIPS weight 10 -> 1", "jaxgan/edit/editgan.py",
             "    lpips_weight: float = 10.0  # loss_dict.p_loss", "    lpips_weight: float = 1.0  # loss_dict.p_loss", ("tests/edit/test_editgan.py",)),
    Mutation("editgan: dilation 7 -> 5", "jaxgan/edit/editgan.py",
             "dilation: int = 7", "dilation: int = 5", ("tests/edit/test_editgan.py",)),
    Mutation("editgan: refinement region from after only", "jaxgan/edit/editgan.py",
             "regions = np.isin(near_before, class_ids) | np.isin(near_moved, class_ids)",
             "regions = np.isin(near_moved, class_ids)", ("tests/edit/test_editgan.py",)),
    Mutation("invert: projector noise-regulariser weight", "jaxgan/edit/invert.py",
             "regularize_noise_weight: float = 1e5", "regularize_noise_weight: float = 1e4", ("tests/edit/test_invert_official.py",)),
    Mutation("invert: w-noise ramp not squared", "jaxgan/edit/invert.py",
             "jnp.maximum(0.0, 1.0 - t / cfg.noise_ramp_length) ** 2",
             "jnp.maximum(0.0, 1.0 - t / cfg.noise_ramp_length)", ("tests/edit/test_invert_official.py",)),
    Mutation("invert: projector lr ramps swapped", "jaxgan/edit/invert.py",
             "ramped_learning_rate(t, cfg.initial_learning_rate, cfg.lr_rampdown_length, cfg.lr_rampup_length)",
             "ramped_learning_rate(t, cfg.initial_learning_rate, cfg.lr_rampup_length, cfg.lr_rampdown_length)", ("tests/edit/test_invert_official.py",)),
    Mutation("invert: projector step index off by one", "jaxgan/edit/invert.py",
             "t = state.step / cfg.steps", "t = (state.step + 1) / cfg.steps", ("tests/edit/test_invert_official.py",)),
    Mutation("invert: embedding step index off by one", "jaxgan/edit/invert.py",
             "t = (state.step + 1) / cfg.steps", "t = state.step / cfg.steps", ("tests/edit/test_invert_official.py",)),
    Mutation("invert: embedding MSE weight 1 -> 10", "jaxgan/edit/invert.py",
             "    mse_weight: float = 1.0", "    mse_weight: float = 10.0", ("tests/edit/test_invert_official.py",)),
    Mutation("invert: cosine rampdown sign", "jaxgan/edit/invert.py",
             "ramp = 0.5 - 0.5 * jnp.cos(ramp * jnp.pi)", "ramp = 0.5 + 0.5 * jnp.cos(ramp * jnp.pi)", ("tests/edit/test_invert_official.py",)),
    Mutation("invert: noise autocorrelation along the wrong axis", "jaxgan/edit/invert.py",
             "jnp.mean(n * jnp.roll(n, 1, axis=0)) ** 2", "jnp.mean(n * jnp.roll(n, 1, axis=1)) ** 2", ("tests/edit/test_invert_official.py",)),
    # The StyleGAN2 trainer's losses and update rules (tests/train/test_stylegan2_losses.py).
    Mutation("train: R1 gamma / 2 -> gamma", "jaxgan/train/stylegan2.py",
             "penalty * (cfg.gamma / 2)", "penalty * cfg.gamma", ("tests/train/test_stylegan2_losses.py",)),
    Mutation("train: R1 without the lazy interval", "jaxgan/train/stylegan2.py",
             "jnp.mean(penalty * (cfg.gamma / 2)) * cfg.d_reg_interval", "jnp.mean(penalty * (cfg.gamma / 2))", ("tests/train/test_stylegan2_losses.py",)),
    Mutation("train: pl_mean decay flipped", "jaxgan/train/stylegan2.py",
             "state.pl_mean + cfg.pl_decay * (", "state.pl_mean + (1 - cfg.pl_decay) * (", ("tests/train/test_stylegan2_losses.py",)),
    Mutation("train: path-length noise scale", "jaxgan/train/stylegan2.py",
             "np.sqrt(img.shape[1] * img.shape[2])", "(img.shape[1] * img.shape[2])", ("tests/train/test_stylegan2_losses.py",)),
    Mutation("train: path-length on the full batch", "jaxgan/train/stylegan2.py",
             "pl_n = n // cfg.pl_batch_shrink", "pl_n = n", ("tests/train/test_stylegan2_losses.py",)),
    Mutation("train: w_avg lerp weight", "jaxgan/train/stylegan2.py",
             "torch_lerp(batch_mean, _w_avg(G), gcfg.w_avg_beta)",
             "torch_lerp(batch_mean, _w_avg(G), 1 - gcfg.w_avg_beta)", ("tests/train/test_stylegan2_losses.py",)),
    Mutation("train: style-mixing cutoff from 0", "jaxgan/train/stylegan2.py",
             "jax.random.randint(cut_key, (), 1, gcfg.num_ws)", "jax.random.randint(cut_key, (), 0, gcfg.num_ws)", ("tests/train/test_stylegan2_losses.py",)),
    Mutation("train: style-mixing layers off by one", "jaxgan/train/stylegan2.py",
             "(jnp.arange(gcfg.num_ws) >= cutoff)", "(jnp.arange(gcfg.num_ws) > cutoff)", ("tests/train/test_stylegan2_losses.py",)),
    Mutation("train: G loss sign", "jaxgan/train/stylegan2.py",
             "jnp.mean(jax.nn.softplus(-logits))", "jnp.mean(jax.nn.softplus(logits))", ("tests/train/test_stylegan2_losses.py",)),
    Mutation("train: D real-term sign", "jaxgan/train/stylegan2.py",
             "jnp.mean(jax.nn.softplus(-real_logits))", "jnp.mean(jax.nn.softplus(real_logits))", ("tests/train/test_stylegan2_losses.py",)),
    Mutation("train: R1 sums over one axis too few", "jaxgan/train/stylegan2.py",
             "jnp.sum(jnp.square(grads), axis=(1, 2, 3))", "jnp.sum(jnp.square(grads), axis=(1, 2))", ("tests/train/test_stylegan2_losses.py",)),
    # Command-line content (tests/cli/): what each command writes, not only its exit code.
    Mutation("images: grid rows and columns swapped", "jaxgan/images.py",
             "r, col = divmod(i, cols)", "col, r = divmod(i, rows)", ("tests/cli/test_generate.py",)),
    Mutation("sampling: class label off by one", "jaxgan/sampling.py",
             "c[:, class_idx] = 1", "c[:, class_idx + 1] = 1", ("tests/cli/test_generate.py",)),
    Mutation("sampling: noise mode ignored", "jaxgan/sampling.py",
             "noise_mode=options.noise_mode, noise_key=noise_key", 'noise_mode="const", noise_key=noise_key', ("tests/cli/test_generate.py",)),
    Mutation("generate: --noise-seed ignored", "jaxgan/cli/generate.py",
             "noise_keys(job.ids, noise_seed)", "noise_keys(job.ids)", ("tests/cli/test_generate.py",)),
    Mutation("pix2pixhd: tensor2im without the +1", "jaxgan/label_maps.py",
             "np.clip((x + np.float32(1)) / np.float32(2) * np.float32(255), 0, 255)",
             "np.clip(x / np.float32(2) * np.float32(255), 0, 255)", ("tests/cli/test_pix2pixhd.py",)),
    Mutation("pix2pixhd: label picture not normalised", "jaxgan/label_maps.py",
             "return (pixels - np.float32(0.5)) / np.float32(0.5)", "return pixels", ("tests/cli/test_pix2pixhd.py",)),
    Mutation("pix2pixhd: edges one side only", "jaxgan/models/pix2pixhd.py",
             "edges = (jnp.pad(dx, ((0, 0), (0, 0), (1, 0))) | jnp.pad(dx, ((0, 0), (0, 0), (0, 1)))",
             "edges = (jnp.pad(dx, ((0, 0), (0, 0), (1, 0)))", ("tests/cli/test_pix2pixhd.py",)),
    Mutation("editgan seg: --mode ignored", "jaxgan/cli/editgan.py",
             "eg.render_with_uncertainty(G, S, ws, mode=mode, ensemble=ensemble)",
             'eg.render_with_uncertainty(G, S, ws, mode="nearest", ensemble=ensemble)', ("tests/cli/test_editgan.py",)),
    Mutation("train-seg: scored on the training latents", "jaxgan/cli/editgan_train.py",
             "segtrain.evaluate(S, G, held_out[1], held_out[2])", "segtrain.evaluate(S, G, ws, masks)", ("tests/cli/test_editgan.py",)),
    Mutation("segtrain: IoU union double-counts", "jaxgan/edit/segtrain.py",
             "union = in_truth + in_prediction - correct", "union = in_truth + in_prediction", ("tests/cli/test_editgan.py",)),
    Mutation("train: --seed ignored", "jaxgan/cli/train.py",
             '{"batch_size": batch_size, "seed": seed}', '{"batch_size": batch_size, "seed": None}', ("tests/cli/test_train.py",)),
    Mutation("train: --tick-kimg ignored", "jaxgan/cli/train.py",
             "snapshot_kimg=snapshot_kimg, tick_kimg=tick_kimg", "snapshot_kimg=snapshot_kimg, tick_kimg=1.0", ("tests/cli/test_train.py",)),
    # Architectures and resampling ops (tests/models/test_stylegan2_architectures_parity.py, tests/ops/).
    Mutation("ops: downsample2d padding off by one", "jaxgan/ops/upfirdn2d.py",
             "p = [padx0 + (fw - downx + 1) // 2,", "p = [padx0 + (fw - downx) // 2,", ("tests/ops/test_upfirdn2d.py",)),
    Mutation("ops: upsample2d gain up instead of up**2", "jaxgan/ops/upfirdn2d.py",
             "gain=gain * upx * upy", "gain=gain * upx", ("tests/ops/test_upfirdn2d.py",)),
    Mutation("ops: upsample2d padding off by one", "jaxgan/ops/upfirdn2d.py",
             "p = [padx0 + (fw + upx - 1) // 2,", "p = [padx0 + (fw + upx) // 2,", ("tests/ops/test_upfirdn2d.py",)),
    Mutation("ops: filter2d padding off by one", "jaxgan/ops/upfirdn2d.py",
             "padx1 + (fw - 1) // 2, pady0 + fh // 2", "padx1 + fw // 2, pady0 + fh // 2", ("tests/ops/test_upfirdn2d.py",)),
    Mutation("ops: polyphase plan ignores flip_filter", "jaxgan/ops/upfirdn2d_plan.py",
             "    if not flip_filter:", "    if True:", ("tests/ops/test_upfirdn2d_xla.py",)),
    Mutation("ops: polyphase plan start sign", "jaxgan/ops/upfirdn2d_plan.py",
             "start = r * down - pad0", "start = r * down + pad0", ("tests/ops/test_upfirdn2d_xla.py",)),
    Mutation("ops: reference path ignores flip_filter", "jaxgan/ops/upfirdn2d_xla.py",
             "    if not flip_filter:", "    if True:", ("tests/ops/test_upfirdn2d_xla.py",)),
    Mutation("stylegan2: resnet G skip gain", "jaxgan/models/stylegan2.py",
             "y = self.skip(x, gain=np.sqrt(0.5))\n            x0 = self.conv0(x, ws[:, 0]",
             "y = self.skip(x, gain=1)\n            x0 = self.conv0(x, ws[:, 0]",
             ("tests/models/test_stylegan2_architectures_parity.py",)),
    Mutation("stylegan2: resnet G residual gain", "jaxgan/models/stylegan2.py",
             "noise_key=keys[1], gain=np.sqrt(0.5), **layer)", "noise_key=keys[1], gain=1, **layer)",
             ("tests/models/test_stylegan2_architectures_parity.py",)),
    Mutation("stylegan2: resnet D skip gain", "jaxgan/models/stylegan2.py",
             "y = self.skip(x, gain=np.sqrt(0.5))\n            x = self.conv0(x)",
             "y = self.skip(x, gain=1)\n            x = self.conv0(x)", ("tests/models/test_stylegan2_parity.py",)),
    Mutation("stylegan2: minibatch-std group size", "jaxgan/models/stylegan2.py",
             "min(group_size, n)", "min(group_size - 1, n)",
             ("tests/models/test_stylegan2_architectures_parity.py",)),
    Mutation("stylegan2: skip D drops the image branch", "jaxgan/models/stylegan2.py",
             "x = x + self.fromrgb(img)", "x = self.fromrgb(img)",
             ("tests/models/test_stylegan2_architectures_parity.py",)),
    Mutation("stylegan2: orig G ToRGB only in skip", "jaxgan/models/stylegan2.py",
             'self.num_torgb = 1 if (self.is_last or cfg.architecture == "skip") else 0',
             'self.num_torgb = 1 if cfg.architecture == "skip" else 0',
             ("tests/models/test_stylegan2_architectures_parity.py",)),
)


def project_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name]


def make_copy(base: Path) -> Path:
    """ROOT's tracked files under base/project, with base/shared pointing at ../shared (the fixtures)."""
    copy = base / "project"
    for name in project_files():
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    shared = ROOT.parent / "shared"
    if shared.exists():
        (base / "shared").symlink_to(shared)
    return copy


def run_tests(copy: Path, tests, timeout: int) -> tuple[int, float, str]:
    start = time.perf_counter()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                              cwd=copy, capture_output=True, text=True, timeout=timeout, env=env)
        code, tail = proc.returncode, (proc.stdout + proc.stderr).strip().splitlines()[-1:]
    except subprocess.TimeoutExpired:
        code, tail = -1, ["timed out"]
    return code, time.perf_counter() - start, " ".join(tail)


def check(mutation: Mutation, copy: Path, timeout: int) -> dict:
    path = copy / mutation.file
    original = path.read_text()
    count = original.count(mutation.old)
    if count != 1:
        return {"name": mutation.name, "outcome": "does not apply", "detail": f"{count} occurrences of the text"}
    path.write_text(original.replace(mutation.old, mutation.new))
    try:
        code, seconds, tail = run_tests(copy, mutation.tests, timeout)
    finally:
        path.write_text(original)
    # pytest exit codes: 0 all passed (the mutation survived), 1 some failed (killed); anything else is an error
    outcome = {0: "survived", 1: "killed"}.get(code, "error")
    return {"name": mutation.name, "outcome": outcome, "seconds": round(seconds, 1), "pytest": tail}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run the mutations whose name contains this text")
    parser.add_argument("--list", action="store_true", help="print the mutations and exit")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per mutation's test run")
    parser.add_argument("--baseline", action="store_true",
                        help="first run every covering test file unmutated (they must pass)")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if args.only is None or args.only in m.name]
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.file}: {m.old!r} -> {m.new!r}  [{', '.join(m.tests)}]")
        return 0
    results = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jaxgan-mutation-") as tmp:
        copy = make_copy(Path(tmp))
        if args.baseline:
            tests = sorted({t.split("::")[0] for m in chosen for t in m.tests})
            code, seconds, tail = run_tests(copy, tests, args.timeout)
            print(f"baseline: {'passed' if code == 0 else 'FAILED'} in {seconds:.0f} s ({tail})", file=sys.stderr)
            if code != 0:
                return 1
        for i, mutation in enumerate(chosen):
            result = check(mutation, copy, args.timeout)
            results.append(result)
            print(f"[{i + 1}/{len(chosen)}] {result['outcome']:>14}  {mutation.name}  "
                  f"({result.get('seconds', 0):.0f} s)", file=sys.stderr)
    survivors = [r for r in results if r["outcome"] != "killed"]
    print(json.dumps({"machine": {"platform": platform.platform(), "processor": platform.processor(),
                                  "cpus": os.cpu_count(), "python": platform.python_version()},
                      "mutations": results, "killed": len(results) - len(survivors), "total": len(results),
                      "seconds": round(time.perf_counter() - start, 1)}, indent=2))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
