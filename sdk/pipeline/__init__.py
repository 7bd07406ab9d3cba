"""Streaming pipelines: source → stages → sinks in threads chosen from the CPUs available
(``sdk.pipeline.layout``), bounded queues between them.

    from sdk.pipeline import Pipeline, Stage, JsonlSink
    pipe = Pipeline("file://clip.mp4", stages=[Stage("preprocess", pre), Stage("infer", model)],
                    sinks=[JsonlSink("out.jsonl")])
    stats = pipe.run()          # blocks; Ctrl-C stops it cleanly
    print(stats.as_dict())
"""

from sdk.pipeline.core import Pipeline
from sdk.pipeline.packet import Packet, Stage, StopPipeline
from sdk.pipeline.queues import POLICIES
from sdk.pipeline.sinks import BaseSink, CallbackSink, DisplaySink, JsonlSink, Sink, VideoSink
from sdk.pipeline.stats import PipelineStats, StageLatency

__all__ = [
    "POLICIES", "BaseSink", "CallbackSink", "DisplaySink", "JsonlSink", "Packet", "Pipeline", "PipelineStats",
    "Sink", "Stage", "StageLatency", "StopPipeline", "VideoSink",
]
