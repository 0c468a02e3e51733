"""Pure-Python core: RunConfig, StageSequencer, lifecycle, PipelineRunner, AppController, the
JobQueue and its JobRunner, the EngineSession every job goes through, events, typed failure
causes, the Executor and Engine protocols and FakeExecutor, outputs, infotext. Imports no Qt and
no torch."""
