"""StableNew Qt: a desktop Stable Diffusion studio running the V2.5 stage pipeline in-process."""

__version__ = "0.1.0"
