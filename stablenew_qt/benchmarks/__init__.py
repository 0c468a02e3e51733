"""Benchmarks that compare the app's road with the same work written by hand in diffusers.

``chain`` times the full chain (txt2img + refiner + hires, img2img, upscale) as an EngineSession
job; ``adetailer`` times the ADetailer stage; ``common`` holds what both share. They run from
``stablenew-qt bench`` (``cli/bench.py``); importing them loads no torch.
"""
