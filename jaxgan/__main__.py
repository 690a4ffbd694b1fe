"""`python -m jaxgan` is the `jaxgan` command."""

from jaxgan.cli import main

main()
