"""Spans and log lines of consumed messages: a trace follows every request through every hop.

Each message gets its own span, named ``<service>.<topic>``, a child of the context its own
``traceparent`` header carries (a message of a batch is also linked to the batch's span), and
what the message causes to be published carries that span in its ``traceparent``: the producer
injects the *current* span, so the runtime publishes a message's outputs inside
:meth:`MessageSpans.use` of that message. The runtime does this itself rather than through
FastStream's telemetry middleware, which gives a batch one span with no parent and costs two
more spans per published message.

Log lines about one message carry its request id and its span's trace id (``autoglm.logs``),
also when they are written outside the core (dedupe, retries, dead letters).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, Tracer

from autoglm.bus.envelope import Envelope
from autoglm.logs import request_id_var


class MessageSpans:
    """The spans of one service's consumed messages."""

    def __init__(self, tracer: Tracer, service: str, logger: logging.Logger) -> None:
        self.tracer = tracer
        self.service = service
        self.log = logger

    def batch(self, topic: str) -> Span:
        return self.tracer.start_span(f"{self.service}.{topic} batch")

    def message(self, topic: str, headers: Mapping[str, str], batch: Span | None = None) -> Span:
        links = [Link(batch.get_span_context())] if batch is not None else None
        return self.tracer.start_span(
            f"{self.service}.{topic}",
            context=propagate.extract(dict(headers)),
            kind=trace.SpanKind.CONSUMER,
            links=links,
        )

    @staticmethod
    @contextmanager
    def use(span: Span) -> Iterator[None]:
        """Make ``span`` current (what is published now carries it), without ending it."""
        with trace.use_span(span, end_on_exit=False):
            yield

    @staticmethod
    def trace_id(span: Span) -> str:
        context = span.get_span_context()
        return format(context.trace_id, "032x") if context.is_valid else ""

    def log_about(
        self, envelope: Envelope, level: int, text: str, exc: bool = False, **extra: object
    ) -> None:
        """A log line about one message: its request id, trace and position."""
        token = request_id_var.set(envelope.request_id)
        try:
            with self.use(envelope.span):
                self.log.log(
                    level, text, exc_info=exc, extra={"position": envelope.position(), **extra}
                )
        finally:
            request_id_var.reset(token)


def inject(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus the current span as ``traceparent`` (the parent of what is sent)."""
    headers = dict(headers)
    propagate.inject(headers)
    return headers
