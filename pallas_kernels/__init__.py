"""Pallas kernels for jaxgan hot ops (see issue 7); each mirrors a jnp reference in jaxgan/ops."""
