"""Third-party chatter off the user's terminal: diffusers and transformers print warnings with
handlers of their own (bypassing the app's logging) and draw tqdm bars while loading ("Loading
pipeline components..."); ultralytics logs every prediction.

:func:`route_library_logs` (called when the engine starts) removes those handlers, lets the
records propagate to the root logger (the CLI's log file and its one-line console filter, the
window's Log tab), and turns the loading bars off unless asked (the CLI's ``-v``). Run progress is
ours (StepProgress events).
"""

from __future__ import annotations

import logging
import os


def route_library_logs(progress_bars: bool = False) -> None:
    """Send diffusers', transformers' and ultralytics' records through the root logger; their
    loading bars only with ``progress_bars``."""
    os.environ.setdefault("YOLO_VERBOSE", "False")  # read by ultralytics when it is imported
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.disable_default_handler()
        library.enable_propagation()
        if progress_bars:
            library.enable_progress_bar()
        else:
            library.disable_progress_bar()
    ultralytics = logging.getLogger("ultralytics")
    for handler in list(ultralytics.handlers):
        ultralytics.removeHandler(handler)
    ultralytics.propagate = True
