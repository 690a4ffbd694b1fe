"""What every benchmark script records beside its timings: the machine, peak memory, and the JSON report."""

import contextlib
import json
import os
import platform
import resource

import jax


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    device = jax.devices()[0]
    return {"jax": jax.__version__, "backend": jax.default_backend(), "device_kind": device.device_kind,
            "device_count": jax.device_count(), "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
            "host": platform.machine(), "python": platform.python_version()}


def peak_memory() -> dict:
    """The process-wide peak so far: device bytes where the backend reports them, else the host's max RSS."""
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
