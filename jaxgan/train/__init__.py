"""Training: losses and jitted update steps (pure functions of SplitModel pytrees and optax states) for StyleGAN2
(`stylegan2`, driven on disk by `run`), EditGAN's encoder (`encoder`, driven by `encoder_run`) and pix2pixHD
(`pix2pixhd`); `settings`: the JSON round trip of their settings dataclasses."""
