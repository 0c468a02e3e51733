"""The in-process diffusers engine: implements core's Executor protocol (torch, diffusers, ultralytics).

Heavy libraries are imported lazily inside the stage modules, on the engine's worker thread.
"""
