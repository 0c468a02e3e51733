"""The in-process diffusers engine: DiffusersExecutor implements core's Engine protocol (torch,
diffusers, ultralytics); its context keeps loaded models under one memory budget.

Heavy libraries are imported lazily inside the stage modules, on the engine's worker thread.
"""
