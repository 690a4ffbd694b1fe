"""Which implementation of a hot op runs: XLA (the jnp ops in jaxgan/ops) or a Pallas kernel (pallas_kernels/).

The keyword follows the pattern of tokamax's `dot_product_attention` (`tokamax/_src/ops/attention/api.py`,
openxla/tokamax@783ea95) and of `jax.nn.dot_product_attention` (`jax/_src/nn/functions.py`, jax 0.10.2): an
`implementation=None|"xla"|"pallas"` keyword, None choosing.

Every switchable op (`upfirdn2d` and its helpers, `bias_act`, `fused_epilogue`, `modulated_conv2d`,
`nearest_in_window` and, through them, the generator, DragGAN, inversion and EditGAN) takes
`implementation=None|"xla"|"pallas"`:

- "xla": the jnp formulation, on every backend.
- "pallas": the Pallas kernel. On CPU it runs in interpret mode (correct, and very slow: for tests only).
  Explicitly asking for it where the kernel does not cover the call (e.g. `bias_act` on a 2-D tensor) raises.
- None: the context's choice if one is set (`use_implementation`, below), else `DECISIONS[op]` for the
  platform. A call that the kernel does not cover falls back to XLA.

The global choice is a `jax.make_user_context`, which is part of `jax.jit`'s cache key, so a jitted function
traced under one choice is traced again under another instead of silently reusing the first:

    from jaxgan.ops.implementation import use_implementation
    with use_implementation("pallas"):      # every op that has a kernel, generator and editing code included
        img = jax.jit(stylegan2.generate)(G, z)
    set_default_implementation("pallas")    # the same, process-wide (None restores the table)

The table below is the single place where the default is decided. A kernel becomes the default on a platform
only after a benchmark on that platform showed it faster than XLA (`scripts/bench_ops.py`,
`scripts/bench_generator.py --implementation`; what is still to be measured and the criteria are in
scripts/results/README.md). No GPU has been available so far, so every entry is XLA.
"""

import dataclasses

import jax

IMPLEMENTATIONS = ("xla", "pallas")


@dataclasses.dataclass(frozen=True)
class Decision:
    """The default implementation of one op per platform, and why."""

    gpu: str
    cpu: str
    why: str


_UNMEASURED = ("the kernel has run in interpret mode only (no GPU was available); on CPU Pallas exists only as "
               "the interpreter, which is orders of magnitude slower than XLA")

DECISIONS: dict[str, Decision] = {
    # The per-layer epilogue of SynthesisLayer: [FIR after the transposed conv] * demod + noise + bias, lrelu,
    # gain, clamp. Fusing it should save about two full-tensor passes per up-layer on a GPU (an estimate from the
    # tensor sizes).
    "epilogue": Decision(gpu="xla", cpu="xla", why=_UNMEASURED),
    # upfirdn2d up 2 / down 2 / pad, polyphase (only the non-zero taps when upsampling).
    "upfirdn2d": Decision(gpu="xla", cpu="xla", why=_UNMEASURED),
    # DragGAN's windowed nearest-neighbour search (many points and sessions).
    "point_tracking": Decision(gpu="xla", cpu="xla", why=_UNMEASURED),
    # StyleGAN3's filtered leaky ReLU (bias, up-FIR, lrelu, clamp, down-FIR): no kernel yet.
    "filtered_lrelu": Decision(gpu="xla", cpu="xla", why="there is no Pallas kernel yet"),
}

_CONTEXT = jax.make_user_context(default_value=None)


def use_implementation(implementation: str | None):
    """Context manager: ops called with `implementation=None` inside it (at trace time) use this implementation
    where they can. None restores the table's choice."""
    return _CONTEXT(_check(implementation))


def set_default_implementation(implementation: str | None) -> None:
    """Process-wide version of `use_implementation` (a `with` block still overrides it)."""
    _CONTEXT.set_global(_check(implementation))


def current_default() -> str | None:
    """The context's choice (None: the table decides)."""
    return _CONTEXT.value


def _check(implementation):
    if implementation is not None and implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be None or one of {IMPLEMENTATIONS}, got {implementation!r}")
    return implementation


def platform() -> str:
    """'gpu' for CUDA / ROCm backends, else the backend name ('cpu', 'tpu')."""
    backend = jax.default_backend()
    return "gpu" if backend in ("gpu", "cuda", "rocm") else backend


def resolve(op: str, implementation: str | None, *, supported: bool = True, why_unsupported: str = "") -> str:
    """The implementation that runs: "xla" or "pallas".

    `supported` says whether the Pallas kernel covers this particular call; an explicit "pallas" on an
    uncovered call raises, a default (None) falls back to XLA.
    """
    if op not in DECISIONS:
        raise KeyError(f"no implementation decision for op {op!r}; known: {sorted(DECISIONS)}")
    if _check(implementation) is None:
        chosen = current_default()
        if chosen is None:
            decision = DECISIONS[op]
            chosen = decision.gpu if platform() == "gpu" else decision.cpu
        return chosen if supported else "xla"
    if implementation == "pallas" and not supported:
        raise ValueError(f"the Pallas {op} kernel does not cover this call: {why_unsupported}")
    return implementation


def interpret_mode() -> bool:
    """Pallas kernels run in interpret mode except on a GPU (the only backend they are written for)."""
    return platform() != "gpu"
