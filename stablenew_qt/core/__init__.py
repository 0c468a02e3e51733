"""Pure-Python core: RunConfig, StageSequencer, lifecycle, PipelineRunner, AppController, events,
the Executor protocol and FakeExecutor, outputs, infotext. Imports no Qt and no torch."""
