"""OpenTelemetry set-up: one tracer provider per process, exporter chosen by settings."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

from autoglm.settings import Settings


def make_exporter(settings: Settings) -> SpanExporter | None:
    if settings.trace_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=settings.otlp_endpoint, insecure=True)
    if settings.trace_exporter == "otlp-http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as OTLPHttpSpanExporter,
        )

        return OTLPHttpSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces")
    if settings.trace_exporter == "console":
        return ConsoleSpanExporter()
    return None


def setup_tracing(service_name: str, settings: Settings) -> TracerProvider:
    """A tracer provider for ``service_name``; spans are sampled always (volume is modest)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = make_exporter(settings)
    if exporter is not None:
        # Console output is for people watching; batch the network exporters.
        processor = (
            SimpleSpanProcessor(exporter)
            if settings.trace_exporter == "console"
            else BatchSpanProcessor(exporter, schedule_delay_millis=500)
        )
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return provider


def current_trace_id() -> str:
    """Hex trace id of the active span, or an empty string outside any trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
