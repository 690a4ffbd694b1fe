"""The source formats `jaxgan convert` reads, by name: the one list the converter and the command line share.

And the targets of `jaxgan export`: the file formats and the official state-dict layouts it writes.

A leaf module (no imports), so that the command line can offer the choices without importing the converters.
"""

SOURCE_KINDS = ("auto", "stylegan2-ada", "stylegan2-ada-pt", "rosinality", "safetensors", "lpips-vgg", "lpips-alex",
                "segbranch", "pix2pixhd", "vgg19", "editgan-encoder")
LPIPS_SOURCE_NETS = {"lpips-vgg": "vgg", "lpips-alex": "alex"}  # the LPIPS trunk each source kind converts
TWO_FILE_KINDS = tuple(LPIPS_SOURCE_NETS)  # these take a second file, `lin`
EXPORT_FORMATS = ("safetensors", "pt")
EXPORT_LAYOUTS = ("stylegan2-ada", "rosinality")
