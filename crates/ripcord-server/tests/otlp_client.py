"""GenAI telemetry from the real OpenTelemetry Python SDK, exported to
ripcord over OTLP/HTTP (protobuf), and the same data as ripcord NDJSON.

Usage: otlp_client.py SERVICE TWIN N
  The exporters read OTEL_EXPORTER_OTLP_ENDPOINT (http://HOST:PORT/otlp) and
  OTEL_EXPORTER_OTLP_HEADERS (Authorization=Bearer%20TOKEN) as usual.
  SERVICE gets N chat spans per version (v1, v2) and a judge's
  gen_ai.evaluation.result for each, from an evaluator whose resource has no
  version (they attach by gen_ai.response.id). v2's judge says "fail" 12% of
  the time, v1's 2%; every 10th span fails with error.type. The same
  outputs and judgements for TWIN are printed as NDJSON on stdout.
"""

import json
import random
import sys
import time
from datetime import datetime, timezone

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

service, twin, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(11)
twin_lines = []


def ts(nanos):
    ms = nanos // 1_000_000
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def twin_event(nanos, version, unit, values):
    twin_lines.append(json.dumps({"ts": ts(nanos), "service": twin, "version": version, "unit": unit, "values": values}))


judged = []
tracers = {}
providers = []
for version in ["v1", "v2"]:
    provider = TracerProvider(resource=Resource.create({"service.name": service, "service.version": version}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    providers.append(provider)
    tracers[version] = provider.get_tracer("otlp_client")
# Both versions serve at the same moments, as under a live split.
now = time.time_ns()
for i in range(n):
    for version in ["v1", "v2"]:
        unit = f"u{rng.randrange(200)}"
        response = f"{version}-r{i}"
        start = now + i * 1_000_000
        end = start + (80 + rng.randrange(40)) * 1_000_000
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": f"model-{version}",
            "gen_ai.response.id": response,
            "user.id": unit,
        }
        failed = i % 10 == 0
        if failed:
            attributes["error.type"] = "timeout"
        span = tracers[version].start_span("chat", start_time=start, attributes=attributes)
        if failed:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)
        twin_event(end, version, unit, {"outputs": 1, "latency_ms": (end - start) / 1e6, "error": int(failed)})
        rate = 0.12 if version == "v2" else 0.02
        judged.append((response, end, version, unit, rng.random() < rate))

for provider in providers:
    provider.force_flush()

# The judge: its own resource, no version; results attach by response id.
logs = LoggerProvider(resource=Resource.create({"service.name": service}))
logs.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
judge = logs.get_logger("judge")
for response, end, version, unit, fail in sorted(judged, key=lambda j: j[1]):
    judge.emit(
        event_name="gen_ai.evaluation.result",
        severity_number=SeverityNumber.INFO,
        attributes={
            "gen_ai.evaluation.name": "hallucination",
            "gen_ai.evaluation.score.label": "fail" if fail else "pass",
            "gen_ai.response.id": response,
        },
    )
    twin_event(end, version, unit, {"judged": 1, "hallucination": int(fail)})
logs.force_flush()
print("\n".join(twin_lines))
