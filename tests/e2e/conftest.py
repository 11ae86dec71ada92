"""The four services as real processes on the real stack, exporting spans to an OTLP receiver."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from autoglm.bus.client import PipelineClient
from autoglm.cli.requests import kb_documents
from autoglm.cli.services import ServiceManager
from autoglm.contracts import GraphCommit
from autoglm.settings import PROJECT_ROOT, Settings


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int


class OtlpReceiver:
    """A minimal OTLP/HTTP trace receiver: what Jaeger would get, kept in memory."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver._add(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _add(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                attributes = {
                    a.key: a.value.string_value for a in resource_spans.resource.attributes
                }
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append(
                            ReceivedSpan(
                                attributes.get("service.name", ""),
                                span.name,
                                span.trace_id.hex(),
                                span.span_id.hex(),
                                span.parent_span_id.hex(),
                                span.kind,
                            )
                        )

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="session")
def services(
    stack_settings: Settings, stack_env: dict[str, str], otlp_receiver: OtlpReceiver
) -> Iterator[ServiceManager]:
    env = {
        **stack_env,
        "AUTOGLM_TRACE_EXPORTER": "otlp-http",
        "AUTOGLM_OTLP_ENDPOINT": otlp_receiver.endpoint,
    }
    manager = ServiceManager(stack_settings, env=env)
    manager.stop()  # leftovers of an interrupted run
    manager.start()
    yield manager
    manager.stop()


SAMPLE_KB = PROJECT_ROOT / "samples" / "kb_sample.txt"


@pytest.fixture(scope="session")
async def sample_graph(stack_settings: Settings, services: ServiceManager) -> int:
    """The sample KB ingested through Kafka; returns the graph version after it."""
    documents = list(kb_documents(Path(SAMPLE_KB), 50))
    version = 0
    async with PipelineClient(stack_settings) as client:
        client.expect(d.request_id for d in documents)
        for document in documents:
            await client.publish("documents", document, key=document.document_id)
        async for _, reply in client.replies([d.request_id for d in documents], 120.0):
            assert isinstance(reply, GraphCommit), reply
            version = max(version, reply.graph_version)
    return version
