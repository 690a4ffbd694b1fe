"""How to get the files a feature needs, in one sentence each: shown by the commands and by the server when the
file is missing. (No imports: the command line reads these before loading JAX.)"""

LPIPS_ENV = "JAXGAN_LPIPS"
LPIPS_FILES_HINT = (
    "LPIPS needs two files: torchvision's vgg16-397923af.pth (https://download.pytorch.org/models/vgg16-397923af.pth) "
    "and lpips/weights/v0.1/vgg.pth (in the lpips pip package, or github.com/richzhang/PerceptualSimilarity); "
    "convert them once with `jaxgan convert vgg16-397923af.pth lpips-vgg --kind lpips-vgg --lin vgg.pth`, then give "
    f"--lpips lpips-vgg (or set {LPIPS_ENV})")
LPIPS_ALEX_ENV = "JAXGAN_LPIPS_ALEX"
LPIPS_ALEX_FILES_HINT = (
    "LPIPS (alex), PTI's tuning loss, needs two files: torchvision's alexnet-owt-7be5be79.pth "
    "(https://download.pytorch.org/models/alexnet-owt-7be5be79.pth) and lpips/weights/v0.1/alex.pth (in the lpips pip "
    "package, or github.com/richzhang/PerceptualSimilarity); convert them once with `jaxgan convert "
    "alexnet-owt-7be5be79.pth lpips-alex --kind lpips-alex --lin alex.pth`, then give --lpips-alex lpips-alex (or "
    f"set {LPIPS_ALEX_ENV})")
LPIPS_FILES_HINTS = {"vgg": LPIPS_FILES_HINT, "alex": LPIPS_ALEX_FILES_HINT}  # by LPIPSConfig.net
SEG_HINT = ("convert classifier files with `jaxgan convert DIR DST --kind segbranch` or train one with "
            "`jaxgan editgan train-seg`")
ENCODER_HINT = ("convert EditGAN's encoder with `jaxgan convert BEST_loss*.pth DST --kind editgan-encoder` or train "
                "one with `jaxgan train-encoder CKPT --out RUN` (the encoder: RUN/encoder)")
