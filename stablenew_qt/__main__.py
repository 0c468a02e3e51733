"""``python -m stablenew_qt``: same as the ``stablenew-qt`` command."""

import sys

from .cli import main

sys.exit(main())
