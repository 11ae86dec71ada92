"""Connection security without servers: client options, URLs, ACL policy, secure stack configs."""

from __future__ import annotations

import ssl
import stat
import subprocess
from pathlib import Path

import pytest
import redis

from autoglm import security
from autoglm.bus import topics
from autoglm.settings import Settings
from autoglm.stack.config import StackPaths, kafka_properties, kafka_spec, neo4j_spec, redis_config
from autoglm.stack.secure import (
    SCRAM_USERS_ENV,
    ensure_password,
    ensure_stack_secrets,
    ensure_tls,
)


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(stack_dir=tmp_path, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def secure(tmp_path: Path) -> Settings:
    return ensure_stack_secrets(_settings(tmp_path, secure=True))


def test_redis_url_quotes_credentials(tmp_path: Path) -> None:
    plain = _settings(tmp_path, redis_password="p@ss:/w rd%")
    assert plain.redis_url == "redis://:p%40ss%3A%2Fw%20rd%25@127.0.0.1:6379/0"
    parsed = redis.connection.parse_url(plain.redis_url)
    assert parsed["password"] == "p@ss:/w rd%"
    assert _settings(tmp_path).redis_url == "redis://127.0.0.1:6379/0"


def test_secure_redis_url_and_options_use_tls_and_the_acl_user(secure: Settings) -> None:
    parsed = redis.connection.parse_url(secure.redis_url)
    assert secure.redis_url.startswith("rediss://autoglm:")
    assert parsed["connection_class"] is redis.SSLConnection
    assert parsed["username"] == "autoglm"
    assert parsed["password"] == secure.redis_password
    assert parsed["ssl_ca_certs"] == str(secure.stack_dir / "tls" / "ca.pem")
    options = security.redis_connection_options(secure)
    assert options["ssl"] is True and options["ssl_cert_reqs"] == "required"
    assert options["username"] == "autoglm" and options["password"] == secure.redis_password


def test_generated_passwords_are_private_and_read_back(tmp_path: Path) -> None:
    first = ensure_password(tmp_path, "neo4j")
    assert ensure_password(tmp_path, "neo4j") == first
    assert len(first) >= 32
    path = tmp_path / "secrets" / "neo4j"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # A client's settings take it from the file when the setting is empty.
    assert _settings(tmp_path).neo4j_password == first
    assert _settings(tmp_path, neo4j_password="explicit-pw").neo4j_password == "explicit-pw"


def test_kafka_options_plain_and_secure(tmp_path: Path, secure: Settings) -> None:
    assert security.kafka_client_options(_settings(tmp_path)) == {
        "bootstrap_servers": "127.0.0.1:9092"
    }
    ensure_tls(secure)
    options = security.kafka_client_options(secure, "parser")
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "parser"
    assert options["sasl_plain_password"] == security.read_secret(tmp_path, "kafka-parser")
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert options["ssl_context"].check_hostname
    # One principal for a whole deployment overrides the roles.
    own = secure.model_copy(update={"kafka_username": "svc", "kafka_password": "pw"})
    assert security.kafka_credentials(own, "parser") == ("svc", "pw")
    assert security.kafka_security(_settings(tmp_path), "parser") is None
    assert security.kafka_security(secure, "parser") is not None


def test_neo4j_options_encrypt_with_the_stack_ca(tmp_path: Path, secure: Settings) -> None:
    assert security.neo4j_driver_options(_settings(tmp_path, neo4j_password="pw-123456")) == {
        "auth": ("neo4j", "pw-123456")
    }
    options = security.neo4j_driver_options(secure)
    assert options["encrypted"] is True
    assert list(options["trusted_certificates"].certs) == [str(tmp_path / "tls" / "ca.pem")]


def _writers(settings: Settings, topic: str) -> set[str]:
    return {
        a.principal
        for a in security.kafka_acls(settings)
        if a.operation == "WRITE" and a.name == settings.topic(topic)
    }


def test_acls_limit_who_writes_what(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert _writers(settings, topics.MODEL_UPDATES) == {"trainer"}
    assert _writers(settings, topics.RESULTS) == {"inference"}
    assert _writers(settings, topics.TRAINING_EXAMPLES) == {"trainer"}
    assert _writers(settings, topics.FEEDBACK) == set()  # operators (super users) only
    assert _writers(settings, topics.QUESTIONS) == {"client"}
    assert _writers(settings, topics.DOCUMENTS) == {"client"}
    client = [a for a in security.kafka_acls(settings) if a.principal == "client"]
    assert {a.operation for a in client} == {"DESCRIBE", "READ", "WRITE"}
    reads = {a.name for a in client if a.operation == "READ"}
    assert reads == {settings.topic(t) for t in ("results", "graph-commits", "dead-letters")}
    # Every line is what KafkaTool.java parses.
    for acl in security.kafka_acls(settings):
        principal, _resource, _pattern, name, operation = acl.line().split("|")
        assert principal.startswith("User:") and name and operation


def test_secure_kafka_listens_on_sasl_ssl_only(secure: Settings) -> None:
    ensure_tls(secure)
    props = kafka_properties(secure, StackPaths(secure.stack_dir))
    assert props["listeners"] == "SASL_SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert "PLAINTEXT" not in props["listener.security.protocol.map"]
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["super.users"] == "User:broker;User:admin"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    spec = kafka_spec(secure, StackPaths(secure.stack_dir), secure.stack_dir, "java", False)
    users = spec.init_env[SCRAM_USERS_ENV].splitlines()
    assert [u.split()[0] for u in users] == list(security.kafka_principals())
    for user in users:  # passwords go to the format tool's environment, never its argv
        assert user.split()[1] not in " ".join(spec.init_argv + spec.argv)
    assert spec.init_argv[spec.init_argv.index("format") - 1].endswith("KafkaTool.java")


def test_secure_redis_and_neo4j_configs(secure: Settings) -> None:
    paths = StackPaths(secure.stack_dir)
    conf = redis_config(secure, paths).splitlines()
    assert "port 0" in conf and f"tls-port {secure.redis_port}" in conf
    assert "user default off" in conf
    assert secure.redis_password not in "\n".join(conf)  # stored as a SHA-256
    assert any(line.startswith("user autoglm on #") for line in conf)
    spec = neo4j_spec(secure, paths, secure.stack_dir, "java", use_class_archive=False)
    assert spec.argv[spec.argv.index("--tls-dir") + 1] == str(
        secure.stack_dir / "tls" / "neo4j-bolt"
    )


def test_certificates_chain_to_the_ca_and_are_private(secure: Settings) -> None:
    files = ensure_tls(secure)
    for server in ("kafka", "neo4j", "redis"):
        verified = subprocess.run(
            ["openssl", "verify", "-CAfile", str(files.ca_cert), str(files.cert(server))],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verified.returncode == 0, verified.stderr
        text = subprocess.run(
            ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(files.cert(server))],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "IP Address:127.0.0.1" in text and "DNS:localhost" in text
    for path in files.root.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    # A second call keeps what exists.
    before = files.cert("kafka").read_bytes()
    assert ensure_tls(secure).cert("kafka").read_bytes() == before
