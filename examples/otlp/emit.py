"""Sends a few GenAI chat spans and their judges' results to ripcord over
OTLP/HTTP with the OpenTelemetry Python SDK (pip install opentelemetry-sdk
opentelemetry-exporter-otlp-proto-http). With examples/otlp/policy.yaml:

    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:7070/otlp \
    OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20$(cat ripcord-data/admin.token)" \
    python3 examples/otlp/emit.py MODEL
"""

import random
import sys
import time

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

model = sys.argv[1] if len(sys.argv) > 1 else "model-a"
resource = Resource.create({"service.name": "chat"})
traces = TracerProvider(resource=resource)
traces.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
logs = LoggerProvider(resource=resource)
logs.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
tracer, judge = traces.get_tracer("chat"), logs.get_logger("judge")

responses = []
for i in range(100):
    response = f"{model}-{time.time_ns()}-{i}"
    responses.append(response)
    with tracer.start_as_current_span("chat") as span:
        span.set_attributes({
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.response.id": response,
            "user.id": f"user-{random.randrange(50)}",
            "user.locale": random.choice(["en", "de"]),
        })
        blocked = random.random() < 0.01
        span.add_event("gen_ai.guardrail.result", {"gen_ai.guardrail.decision": "block" if blocked else "allow"})
        time.sleep(0.01)
traces.force_flush()

# Judges run later, elsewhere: they name the response they judged, and
# ripcord attaches each result to it (its model, user and time).
for response in responses:
    judge.emit(event_name="gen_ai.evaluation.result", attributes={
        "gen_ai.evaluation.name": "groundedness",
        "gen_ai.evaluation.score.label": "ungrounded" if random.random() < 0.02 else "grounded",
        "gen_ai.response.id": response,
    })
    judge.emit(event_name="gen_ai.evaluation.result", attributes={
        "gen_ai.evaluation.name": "relevance",
        "gen_ai.evaluation.score.value": random.uniform(0.6, 1.0),
        "gen_ai.response.id": response,
    })
logs.force_flush()
