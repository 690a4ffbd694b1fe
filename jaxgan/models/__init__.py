"""Network families: `stylegan2` (generator and discriminator)."""
