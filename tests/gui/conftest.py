"""GUI test fixtures: ``make_main_window`` (a fresh window per call, isolated settings and folders,
failing the test if a QThread or QTimer is left running)."""

from stablenew_qt.gui import testing

make_main_window = testing.make_main_window
