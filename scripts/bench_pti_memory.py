"""PTI's memory per image (jaxgan/edit/pti.py `tuning_memory_per_image`) at the resolutions users tune at.

For each resolution, an abstract full-width StyleGAN2 (config F: channel_base 32768, channel_max 512, 8 mapping
layers, conv_clamp 256; 16384 / 512 at 1024 px would be the FFHQ config, `--channel-base` sets it) and an abstract
LPIPS (alex): nothing is allocated or run, the one-image tuning step is only compiled. Reports, in bytes, the
tuning state (synthesis parameters + Adam moments), XLA's `compiled.memory_analysis()` temporaries of the step, and
the total per image (twice the state plus the temporaries), with the images per device that cap would allow on an
80 GB and a 141 GB accelerator (80% of the memory, as `pti.images_per_device`). The temporaries are the CPU
compiler's; a GPU compilation can differ (scripts/results/README.md lists it as still to be measured there).

    python scripts/bench_pti_memory.py --resolutions 256,512,1024 --out scripts/results/pti_memory_cpu.json
"""

import argparse
import time

import jax

from bench_common import machine_info, write_report
from jaxgan.edit import pti
from jaxgan.models import lpips as lpips_model
from jaxgan.models import stylegan2

GB = 1e9


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--resolutions", default="256,512,1024", help="generator resolutions, comma-separated")
    p.add_argument("--channel-base", type=int, default=32768)
    p.add_argument("--channel-max", type=int, default=512)
    p.add_argument("--out", help="also write the JSON here")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    alex = lpips_model.abstract_model(lpips_model.LPIPSConfig(net="alex"))
    rows = []
    for resolution in map(int, args.resolutions.split(",")):
        gcfg = stylegan2.GeneratorConfig(
            z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3, mapping_layers=8,
            channels=stylegan2.channels_by_resolution(resolution, args.channel_base, args.channel_max),
            conv_clamp=256)
        G = jax.eval_shape(lambda: stylegan2.init_generator(gcfg, jax.random.key(0)))
        start = time.perf_counter()
        memory = pti.tuning_memory_per_image(G, alex)
        row = {"resolution": resolution, "state_bytes": memory["state"], "temp_bytes": memory["temp"],
               "total_bytes": memory["total"], "total_gb": round(memory["total"] / GB, 3),
               "images_per_80gb": pti.images_per_device(memory["total"], int(80 * GB)),
               "images_per_141gb": pti.images_per_device(memory["total"], int(141 * GB)),
               "compile_s": round(time.perf_counter() - start, 1)}
        rows.append(row)
        print(row, flush=True)
    write_report({"benchmark": "pti_memory", "machine": machine_info(),
                  "settings": {"channel_base": args.channel_base, "channel_max": args.channel_max,
                               "pti": "PTIConfig() defaults (locality off)"}, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
