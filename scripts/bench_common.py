"""What every benchmark script records beside its timings: the machine, peak memory, and the JSON report; and what
reading them needs (`read_report`, the GPUs' peak rates). jax is imported only by the functions that need it, so
reading reports (scripts/gpu_check_summary.py) does not start a backend."""

import contextlib
import json
import os
import platform
import resource

# Peak rates the GPU results are read against (scripts/results/README.md, "Fraction of peak FLOP rate"): dense FP32
# on the CUDA cores, dense TF32 on the tensor cores (what XLA's float32 convolutions use by default on Ampere and
# Hopper), HBM bandwidth; NVIDIA's data sheets. Matched against `device_kind` (lower case), first match wins, so
# the PCIe card comes before the SXM one.
GPU_PEAKS = (
    ("h100 pcie", {"name": "H100 PCIe", "fp32_tflop_per_s": 51, "tf32_tflop_per_s": 378, "hbm_tb_per_s": 2.0}),
    ("h100", {"name": "H100 SXM", "fp32_tflop_per_s": 67, "tf32_tflop_per_s": 495, "hbm_tb_per_s": 3.35}),
    ("h200", {"name": "H200", "fp32_tflop_per_s": 67, "tf32_tflop_per_s": 495,
              "hbm_tb_per_s": 4.8}),
)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def gpu_peaks(device_kind: str) -> dict | None:
    """The GPU_PEAKS entry for a `jax.devices()[0].device_kind` (e.g. 'NVIDIA H100 80GB HBM3'), else None."""
    kind = device_kind.lower()
    return next((dict(peaks) for key, peaks in GPU_PEAKS if key in kind), None)


def read_report(path) -> dict:
    """A benchmark's JSON report (what `write_report` wrote)."""
    with open(path) as f:
        return json.load(f)


def machine_info() -> dict:
    import jax
    device = jax.devices()[0]
    return {"jax": jax.__version__, "backend": jax.default_backend(), "device_kind": device.device_kind,
            "device_count": jax.device_count(), "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
            "host": platform.machine(), "python": platform.python_version()}


def peak_memory() -> dict:
    """The process-wide peak so far: device bytes where the backend reports them, else the host's max RSS."""
    import jax
    stats = jax.devices()[0].memory_stats()
    if stats and "peak_bytes_in_use" in stats:
        return {"device_peak_bytes": int(stats["peak_bytes_in_use"])}
    return {"host_max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def write_report(report: dict, out: str | None) -> None:
    """Print the report as JSON and, with `out`, also write it there."""
    text = json.dumps(report, indent=1)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
