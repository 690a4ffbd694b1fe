"""The shared test helpers: every function and constant that more than one test file uses lives here, and test files
import them from here only (never from one another). Pytest fixtures shared by several files live in conftest.py.

Sections: the fixtures folder, refused CLI commands, CLI checkpoint conversions (once per worker process), naive
reference ops, the StyleGAN2 parity fixtures, the DragGAN trace fixtures. Project modules are imported inside the
helpers that need them, so importing this module costs no more than numpy and pytest.
"""

import functools
import json
from pathlib import Path

import numpy as np
import pytest

# ----------------------------------------------------------------------------------------------------------------
# The fixtures folder: ../shared/fixtures beside the project root

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


def fixture_path(name: str) -> Path:
    """The path of fixture `name`; skips the calling test when the fixture (or the whole folder) is absent."""
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"parity fixture {path} is absent (expected ../shared/fixtures beside the project root)")
    return path


def load_fixture(name: str):
    """(arrays, meta) of a fixture .npz; PyTorch NCHW arrays are left as stored."""
    data = np.load(fixture_path(name))
    return data, json.loads(str(data["meta"]))


def nchw_to_nhwc(x):
    """A PyTorch NCHW array in jaxgan's NHWC layout."""
    return np.transpose(x, (0, 2, 3, 1))


# ----------------------------------------------------------------------------------------------------------------
# Refused CLI commands: a non-zero exit, one `Error:` line, nothing written


def assert_refused(result, message, *unwritten, exit_code=1):
    """`result` (click's CliRunner) failed with `message` in its single `Error:` line and left `unwritten` absent.

    exit_code: the expected code (1: a bad value, 2: a usage error), or None for any non-zero code. With 1 the
    message is all the output there is.
    """
    if exit_code is None:
        assert result.exit_code != 0, result.output
    else:
        assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    if result.exit_code == 1:
        assert len([line for line in result.output.splitlines() if line.strip()]) == 1, result.output
    for path in unwritten:
        assert not path.exists(), f"{path} was written"


# ----------------------------------------------------------------------------------------------------------------
# CLI checkpoint conversions, shared by tests/cli/test_lpips.py, test_invert.py and test_editgan.py

FILES_HINT = ("vgg16-397923af.pth (https://download.pytorch.org/models/vgg16-397923af.pth) and "
              "lpips/weights/v0.1/vgg.pth")  # what a refusal for want of an LPIPS checkpoint tells the user to get
ALEX_FILES_HINT = ("alexnet-owt-7be5be79.pth (https://download.pytorch.org/models/alexnet-owt-7be5be79.pth) and "
                   "lpips/weights/v0.1/alex.pth")  # the same for LPIPS (alex)
# The fixtures' LPIPS sources per net: (random torchvision-layout trunk, released v0.1 lin weights)
LPIPS_FIXTURE_FILES = {"vgg": ("vgg16_random_trunk_fp16.pth", "lpips_v0.1_vgg_lin.pth"),
                       "alex": ("alexnet_random_trunk.pth", "lpips_v0.1_alex_lin.pth")}

_CONVERTED = {}  # key -> (checkpoint dir, convert result): one conversion per worker process (-n 2 --dist loadfile)


def convert_once(key, tmp_path_factory, *args):
    """(checkpoint dir, click result) of `jaxgan convert ARGS[0] DST ARGS[1:]`, run once per process for `key`.

    DST is a fresh folder from `tmp_path_factory` (anything with a `mktemp(name)`); later calls with the same key
    return the first conversion, whatever factory they pass. LPIPS_ENV is unset for the command.
    """
    if key not in _CONVERTED:
        from click.testing import CliRunner

        from jaxgan.cli import main
        from jaxgan.cli.common import LPIPS_ENV
        dst = tmp_path_factory.mktemp(key) / key
        command = ["convert", *args[:1], dst, *args[1:]]
        result = CliRunner().invoke(main, [str(a) for a in command], env={LPIPS_ENV: None})
        assert result.exit_code == 0, result.output
        _CONVERTED[key] = (dst, result)
    return _CONVERTED[key]


def lpips_checkpoint(tmp_path_factory):
    """(checkpoint dir, convert result) of `jaxgan convert VGG.pth DST --kind lpips-vgg --lin LIN.pth`.

    The fixtures' random VGG16 trunk and the real v0.1 lin weights: the distances are not perceptual, but the
    pipeline is the real one.
    """
    return convert_once("lpips-vgg", tmp_path_factory, fixture_path("vgg16_random_trunk_fp16.pth"), "--kind",
                        "lpips-vgg", "--lin", fixture_path("lpips_v0.1_vgg_lin.pth"))


def lpips_alex_checkpoint(tmp_path_factory):
    """(checkpoint dir, convert result) of `jaxgan convert ALEXNET.pth DST --kind lpips-alex --lin LIN.pth`: the
    fixtures' random AlexNet trunk and the real v0.1 alex lin weights (PTI's LPIPS)."""
    trunk, lin = LPIPS_FIXTURE_FILES["alex"]
    return convert_once("lpips-alex", tmp_path_factory, fixture_path(trunk), "--kind", "lpips-alex", "--lin",
                        fixture_path(lin))


@functools.cache
def fixture_lpips(net: str = "vgg"):
    """The fixtures' LPIPS model of trunk `net` ('vgg' or 'alex') through the library converter, once per process
    (for tests of what uses LPIPS; the converter itself is tested in tests/checkpoints_convert/test_lpips.py)."""
    from checkpoints_convert.lpips import convert_lpips
    trunk, lin = LPIPS_FIXTURE_FILES[net]
    return convert_lpips(fixture_path(trunk), fixture_path(lin), net)[0]["LPIPS"]


def generator_checkpoint(tmp_path_factory):
    """The 64 px stylegan2-ada fixture pickle as a jaxgan checkpoint (G and D)."""
    return convert_once("sg2ada", tmp_path_factory, fixture_path("sg2ada_res64.pkl"))[0]


def editgan_checkpoints(tmp_path_factory):
    """(G, S): the 64 px EditGAN-layout (rosinality) generator and its segmentation branch as jaxgan checkpoints."""
    G = convert_once("rosinality", tmp_path_factory, fixture_path("rosinality_G_res64.pt"))[0]
    S = convert_once("segbranch", tmp_path_factory, fixture_path("editgan_classifiers_res64"), "--kind",
                     "segbranch")[0]
    return G, S


# ----------------------------------------------------------------------------------------------------------------
# Naive reference ops: numpy loops written from the definitions, no convolution routine

ASYMMETRIC = np.arange(1, 13, dtype=np.float32).reshape(3, 4)  # a 2-D filter that makes any wrong flip visible


def naive_upfirdn2d(x, f, up, down, pad, gain=1.0, flip_filter=False):
    """upfirdn2d by its definition (zero-stuff, pad, true convolution, decimate): NHWC, 2-D filter, every step
    written out with loops, no convolution routine."""
    x0, x1, y0, y1 = pad
    n, h, w, c = x.shape
    stuffed = np.zeros((n, h * up, w * up, c), np.float64)
    stuffed[:, ::up, ::up] = x
    padded = np.zeros((n, h * up + max(y0, 0) + max(y1, 0), w * up + max(x0, 0) + max(x1, 0), c))
    padded[:, max(y0, 0): max(y0, 0) + h * up, max(x0, 0): max(x0, 0) + w * up] = stuffed
    padded = padded[:, max(-y0, 0): padded.shape[1] - max(-y1, 0), max(-x0, 0): padded.shape[2] - max(-x1, 0)]
    f = np.asarray(f, np.float64) * gain
    kernel = f if flip_filter else f[::-1, ::-1]  # convolution == correlation with the flipped filter
    fh, fw = kernel.shape
    oh, ow = padded.shape[1] - fh + 1, padded.shape[2] - fw + 1
    out = np.zeros((n, oh, ow, c))
    for i in range(fh):
        for j in range(fw):
            out += kernel[i, j] * padded[:, i: i + oh, j: j + ow]
    return out[:, ::down, ::down]


def naive_conv2d(x, w, stride=1, pad=0):
    """torch.nn.functional.conv2d (correlation), NHWC input, OIHW weight."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    o, i, kh, kw = w.shape
    oh, ow = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, o))
    for ky in range(kh):
        for kx in range(kw):
            patch = x[:, ky: ky + stride * oh: stride, kx: kx + stride * ow: stride]  # [N, oh, ow, I]
            out += patch @ w[:, :, ky, kx].T
    return out


def naive_conv_transpose2d(x, w_io, stride):
    """torch.nn.functional.conv_transpose2d, padding 0: each input pixel scatters w_io[i, o] into the output."""
    i_ch, o_ch, kh, kw = w_io.shape
    n, h, w, _ = x.shape
    out = np.zeros((n, (h - 1) * stride + kh, (w - 1) * stride + kw, o_ch))
    for ky in range(kh):
        for kx in range(kw):
            out[:, ky: ky + stride * h: stride, kx: kx + stride * w: stride] += x @ w_io[:, :, ky, kx]
    return out



# LPIPS v0.1 vgg written out from its definition (richzhang/PerceptualSimilarity lpips.py): ScalingLayer, torchvision
# vgg16().features up to relu5_3 (taps after the ReLUs of convs 2, 7, 14, 21, 28), unit-normalised channels (eps
# added to the norm), lin-weighted squared differences, spatial mean, sum over the five taps.
_NAIVE_VGG16 = (0, 2, "M", 5, 7, "M", 10, 12, 14, "M", 17, 19, 21, "M", 24, 26, 28)
_NAIVE_VGG16_TAPS = (2, 7, 14, 21, 28)


@functools.cache
def naive_lpips_weights(trunk="vgg16_random_trunk_fp16.pth", lin="lpips_v0.1_vgg_lin.pth"):
    """({conv index: (weight OIHW, bias)}, [lin_k [C_k]]) as float64 numpy, read straight from the fixture files."""
    from checkpoints_convert.torch_reader import load_torch_file
    t = load_torch_file(fixture_path(trunk))
    l_ = load_torch_file(fixture_path(lin))
    convs = {i: (np.asarray(t[f"features.{i}.weight"], np.float64), np.asarray(t[f"features.{i}.bias"], np.float64))
             for i in _NAIVE_VGG16 if i != "M"}
    lins = [np.asarray(l_[f"lin{k}.model.1.weight"], np.float64).reshape(-1) for k in range(5)]
    return convs, lins


def naive_lpips_vgg(x0, x1, weights=None):
    """[N] LPIPS v0.1 vgg distance of NHWC images in [-1, 1] by the definition above: numpy in float64, the conv
    products as plain matrix products (no convolution routine, nothing of jaxgan's LPIPS)."""
    import jax
    import jax.numpy as jnp
    convs, lins = naive_lpips_weights() if weights is None else weights
    shift = np.array([-0.030, -0.088, -0.188])
    scale = np.array([0.458, 0.448, 0.450])
    n = len(x0)
    x = (np.concatenate([x0, x1]).astype(np.float64) - shift) / scale
    total = np.zeros(n)
    k = 0
    for layer in _NAIVE_VGG16:
        if layer == "M":
            b, h, w, c = x.shape
            x = x[:, : h // 2 * 2, : w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
            continue
        weight, bias = convs[layer]
        b, h, w, c = x.shape
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        # 3x3 correlation, padding 1, as one product: patches [B, H, W, (ky, kx, c)] x weight [(ky, kx, c), O]
        patches = np.concatenate([padded[:, ky: ky + h, kx: kx + w] for ky in range(3) for kx in range(3)], axis=-1)
        # The product in float32 through XLA's dot (everything else float64 numpy): on a busy 2-core machine
        # numpy's multi-threaded BLAS is up to 100x slower; the distances stay within 1e-8 of the official ones.
        kernel = weight.transpose(2, 3, 1, 0).reshape(9 * c, -1)
        product = jnp.dot(patches.astype(np.float32), kernel.astype(np.float32), precision=jax.lax.Precision.HIGHEST)
        x = np.maximum(np.asarray(product, np.float64) + bias, 0)
        if layer in _NAIVE_VGG16_TAPS:
            f = x / (np.sqrt(np.sum(x * x, axis=-1, keepdims=True)) + 1e-10)
            total += np.mean(np.sum(lins[k] * (f[:n] - f[n:]) ** 2, axis=-1), axis=(1, 2))
            k += 1
    return total


# ----------------------------------------------------------------------------------------------------------------
# StyleGAN2 parity fixtures (../shared/fixtures/sg2ada_*.npz): networks built from their `param/` state dicts

GENERATORS = ["sg2ada_G_res64.npz", "sg2ada_G_res32_cond.npz"]  # 64 px; 32 px conditional


def fixture_state_dict(data):
    """The `param/<key>` arrays of a fixture .npz as a state dict, without the (recomputed) resample filters."""
    return {k[len("param/"):]: data[k] for k in data.files
            if k.startswith("param/") and not k.endswith("resample_filter")}


@functools.cache
def generator_fixture(name):
    """(G, arrays, meta) of a generator fixture: the official weights in jaxgan's StyleGAN2 generator."""
    from checkpoints_convert.keymap import fill_model
    from jaxgan.models import stylegan2
    data, meta = load_fixture(name)
    kw = meta["init_kwargs"]
    syn = kw["synthesis_kwargs"]
    cfg = stylegan2.GeneratorConfig(
        z_dim=kw["z_dim"], c_dim=kw["c_dim"], w_dim=kw["w_dim"], img_resolution=kw["img_resolution"],
        img_channels=kw["img_channels"], mapping_layers=kw["mapping_kwargs"]["num_layers"],
        channels=stylegan2.channels_by_resolution(kw["img_resolution"], syn["channel_base"],
                                                  syn["channel_max"]),
        conv_clamp=syn["conv_clamp"], architecture=syn.get("architecture", "skip"))
    return fill_model(stylegan2.abstract_model(cfg), fixture_state_dict(data)), data, meta


def sg3_fixture_config(meta):
    """The StyleGAN3Config of a StyleGAN3 fixture, from the constructor arguments it records (flat, as
    networks_stylegan3.Generator takes them, with mapping_kwargs), read as the converter reads them."""
    from checkpoints_convert.stylegan3_pkl import generator_config
    return generator_config(meta["init_kwargs"])


def fixture_module_params(data, module: str) -> dict:
    """{suffix: array} of a fixture's `param/<module>.<suffix>` arrays, e.g. module 'synthesis.L0_36_32'."""
    prefix = f"param/{module}."
    return {k[len(prefix):]: data[k] for k in data.files if k.startswith(prefix)}


@functools.cache
def discriminator_fixture(name):
    """(D, arrays, meta) of a discriminator fixture: the official weights in jaxgan's StyleGAN2 discriminator."""
    from checkpoints_convert.keymap import fill_model
    from jaxgan.models import stylegan2
    data, meta = load_fixture(name)
    kw = meta["init_kwargs"]
    cfg = stylegan2.DiscriminatorConfig(
        c_dim=kw["c_dim"], img_resolution=kw["img_resolution"], img_channels=kw["img_channels"],
        channels=stylegan2.channels_by_resolution(kw["img_resolution"], kw["channel_base"],
                                                  kw["channel_max"]),
        conv_clamp=kw["conv_clamp"], mbstd_group_size=kw["epilogue_kwargs"]["mbstd_group_size"],
        architecture=kw.get("architecture", "resnet"))
    return fill_model(stylegan2.abstract_model(cfg), fixture_state_dict(data)), data, meta


# ----------------------------------------------------------------------------------------------------------------
# DragGAN trace fixtures (../shared/fixtures/draggan_trace_*.npz): generator, settings and a ready session

DRAG_TRACE_LOW_LR = "draggan_trace_lr1e-3.npz"
DRAG_TRACE_HIGH_LR = "draggan_trace_lr5e-2.npz"
DRAG_TRACE_SG3 = "draggan_sg3_trace_lr5e-2.npz"


@functools.cache
def drag_trace(name: str):
    """(generator, arrays, settings) of one official trace; the generator comes from its `param/` state dict and,
    as the renderer's `init_network` leaves it, with the identity input transform (StyleGAN3)."""
    from checkpoints_convert.stylegan2_pkl import convert_state_dict
    from jaxgan.models import generators
    data = np.load(fixture_path(name))
    meta = json.loads(str(data["meta"]))
    tensors = {key[len("param/"):]: data[key] for key in data.files if key.startswith("param/")}
    G = generators.with_user_transform(convert_state_dict("Generator", meta["init_kwargs"], tensors, which=name))
    return G, data, meta["settings"]


def drag_config(G, **overrides):
    """The DragConfig for generator G, with room for 4 handles unless `overrides` say otherwise."""
    from jaxgan.edit import drag
    return drag.DragConfig.for_generator(G.config, **{"max_points": 4, **overrides})


def drag_fixture_session(name: str, cfg, **overrides):
    """A new drag session with the trace's start latent, points, targets, mask and settings (`overrides` win)."""
    from jaxgan.edit import drag
    G, data, settings = drag_trace(name)
    kwargs = dict(mask=data["mask"], lr=settings["lr"], lambda_mask=settings["lambda_mask"],
                  max_steps=len(data["points"]))
    kwargs.update(overrides)
    return drag.new_session(cfg, data["w0"], data["init_points"], data["targets"], **kwargs)


@functools.cache
def jitted_drag_step():
    """drag.drag_step compiled with a static cfg, one per process (so the tests share its compilations)."""
    import jax

    from jaxgan.edit import drag
    return jax.jit(drag.drag_step, static_argnames="cfg")


# ----------------------------------------------------------------------------------------------------------------
# `jaxgan serve`, started as a user starts it: a subprocess on loopback


def wait_session_end(url: str, kind: str, sid: str, timeout: float = 240.0, client=None) -> dict:
    """Poll `GET /api/{kind}/{sid}` every 0.1 s until the session is no longer running; its status. Fails the test
    after `timeout` seconds."""
    import time

    import httpx
    client = client or httpx.Client(timeout=120)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"{url}/api/{kind}/{sid}").json()
        if status["state"] != "running":
            return status
        time.sleep(0.1)
    raise AssertionError(f"{kind} session {sid} still running after {timeout} s")


def png_data_url(pixels, mode=None) -> str:
    """uint8 pixels [H, W] or [H, W, C] as a `data:image/png;base64,...` URL (how clients upload images)."""
    import base64
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8), mode).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def png_pixels(data) -> np.ndarray:
    """The pixels of a PNG: its bytes, or a `data:image/png;base64,...` URL (what the server sends back)."""
    import base64
    import io

    from PIL import Image
    if isinstance(data, str):
        data = base64.b64decode(data.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)))


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m jaxgan serve ARGS --port P` in a subprocess; `url`, `stop()` (SIGTERM, returns the exit code)."""

    def __init__(self, *args, ready_timeout: float = 120.0):
        import subprocess
        import sys
        import tempfile
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "jaxgan", "serve", *args, "--port", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready(ready_timeout)

    def _wait_ready(self, timeout: float) -> None:
        import time
        import httpx
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jaxgan serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/api/health", timeout=2).status_code in (200, 401):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.proc.kill()
        raise RuntimeError(f"jaxgan serve did not answer within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self, timeout: float = 60.0) -> int:
        import signal
        import subprocess
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


# ----------------------------------------------------------------------------------------------------------------
# The browser editor in headless Chromium (Debian's package), driven by Playwright

CHROMIUM = "/usr/bin/chromium"
# Chromium on a closed network: no background connections, no sandbox (CI runs as root), a fresh profile per launch.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-default-apps"]


def launch_chromium(playwright):
    """Debian's Chromium through Playwright (its own browser download is never used). Without the browser the test
    is skipped, unless JAXGAN_REQUIRE_BROWSER is set (CI sets it after installing the package), then it fails."""
    import os
    import pytest
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: apt-get install chromium (the editor's tests drive it)"
        if os.environ.get("JAXGAN_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


class BrowserLog:
    """What a page reported: console errors and uncaught exceptions. `allowed` substrings are expected errors
    (e.g. the console line Chromium writes for a 4xx response a test provoked)."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def unexpected(self, allowed=()) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in allowed)]


# ----------------------------------------------------------------------------------------------------------------
# Jobs of several processes on localhost


def job_command(args, process_id: int, num_processes: int, port: int) -> list[str]:
    """The command line of process `process_id` of a job, as the README's 'Several hosts' recipe writes it."""
    import sys
    return [sys.executable, "-m", "jaxgan", *map(str, args), "--coordinator", f"127.0.0.1:{port}",
            "--num-processes", str(num_processes), "--process-id", str(process_id)]


def output_files(folder, *, documents: bool = True, checkpoint_kind: str | None = None) -> dict:
    """{name: contents} of a command's output folder, to compare two runs: PNGs as pixels, `.npy` arrays, every
    array of a `.npz` (as 'NAME:KEY'), with `documents` the JSON files, and with `checkpoint_kind` each checkpoint
    folder's model of that kind (its leaves as 'NAME/i', its sidecar as 'NAME/jaxgan.json')."""
    from PIL import Image
    found = {}
    for path in sorted(Path(folder).iterdir()):
        if path.suffix == ".png":
            found[path.name] = np.asarray(Image.open(path))
        elif path.suffix == ".npy":
            found[path.name] = np.load(path)
        elif path.suffix == ".npz":
            with np.load(path) as data:
                found.update({f"{path.name}:{k}": data[k] for k in data.files})
        elif path.suffix == ".json" and documents:
            found[path.name] = json.loads(path.read_text())
        elif path.is_dir() and checkpoint_kind is not None:
            import jax

            from jaxgan.checkpoint import load_model, read_sidecar
            leaves = jax.tree_util.tree_leaves(load_model(path, checkpoint_kind))
            found.update({f"{path.name}/{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)})
            found[f"{path.name}/jaxgan.json"] = read_sidecar(path)
    return found


def run_job(args, *, num_processes: int = 2, devices_per_process: int = 2, timeout: float = 300.0,
            extra=None, kill_when=None):
    """Run `jaxgan ARGS` as a job of `num_processes` local processes of `devices_per_process` CPU devices each;
    returns [(exit code, stdout, stderr, seconds from the start to its exit)] by process id. `extra[i]`: more
    arguments for process i only. `kill_when=(i, ready)`: SIGKILL process i as soon as `ready()` is true (polled).
    Every process is killed at `timeout` (then its exit code is None), so a hang fails the test instead of
    stalling it."""
    import os
    import signal
    import subprocess
    import tempfile
    import time
    port = free_port()
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": str(devices_per_process), "JAX_PLATFORMS": "cpu"}
    logs = [(tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")) for _ in range(num_processes)]  # no pipe
    procs = [subprocess.Popen(job_command(list(args) + list((extra or {}).get(i, [])), i, num_processes, port),
                              env=env, stdout=out, stderr=err, text=True)  # to fill up and block a process
             for i, (out, err) in enumerate(logs)]
    start = time.monotonic()
    ends = [None] * num_processes
    victim, ready = kill_when if kill_when is not None else (None, None)
    while time.monotonic() - start < timeout and None in ends:
        if victim is not None and (ready() or procs[victim].poll() is not None):
            procs[victim].send_signal(signal.SIGKILL)
            victim = None
        for i, proc in enumerate(procs):
            if ends[i] is None and proc.poll() is not None:
                ends[i] = time.monotonic() - start
        time.sleep(0.05)
    results = []
    for proc, (out, err), end in zip(procs, logs, ends):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        out.seek(0)
        err.seek(0)
        results.append((proc.returncode if end is not None else None, out.read(), err.read(), end))
        out.close()
        err.close()
    return results


def run_one_process(args, *, devices: int, timeout: float = 300.0):
    """`jaxgan ARGS` as one process with `devices` CPU devices: (exit code, stdout, stderr)."""
    import os
    import subprocess
    import sys
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": str(devices), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-m", "jaxgan", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr
