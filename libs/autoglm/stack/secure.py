"""Secure mode of the local stack: certificates, generated passwords, SCRAM users and ACLs.

``autoglm stack up --secure`` (``AUTOGLM_SECURE``) starts Kafka with a SASL_SSL listener
(SCRAM-SHA-512) and ACLs, Neo4j with Bolt over TLS only, and Redis on a TLS port with an ACL user.
What it needs is made once, under the stack folder, readable by its owner alone:
- ``tls/``: a CA and one certificate per server (host names and addresses of the settings as
  SANs), made with ``openssl`` (the stack already relies on system tools, and the virtualenv has
  no ``cryptography``); Kafka's key and certificate also as a PKCS#12 keystore.
- ``secrets/``: one generated password per file (``neo4j``, ``redis``, ``kafka-<user>``,
  ``kafka-keystore``), read back by clients through ``autoglm.security``.
Files are 0600 and folders 0700 from the moment they exist (created under umask 077).

SCRAM users exist from the moment Kafka's storage is formatted (``KafkaTool.java format``, which
reads them from the environment, never from the command line); ACLs are created once the cluster
answers (``KafkaTool.java acls``, again only when they changed). Brokers talk to each other
over the SASL_SSL listener as the super user ``broker``, and to the controllers over TLS with
client certificates, whose CN ``broker`` maps to the same principal.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from autoglm import security
from autoglm.settings import Settings
from autoglm.stack.base import StackError

CERT_DAYS = 825
KEY_BITS = "rsa:2048"
SCRAM_USERS_ENV = "AUTOGLM_KAFKA_SCRAM_USERS"  # read by stack/kafka/KafkaTool.java
KEYSTORE_SECRET = "kafka-keystore"
SERVERS_WITH_CERTS = ("kafka", "neo4j", "redis")
BROKER_CN = security.BROKER


@dataclass(frozen=True)
class TlsFiles:
    """Where the certificates and keys of the local stack are (see ``ensure_tls``)."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    def cert(self, server: str) -> Path:
        return self.root / f"{server}.pem"

    def key(self, server: str) -> Path:
        return self.root / f"{server}.key"

    @property
    def kafka_keystore(self) -> Path:
        return self.root / "kafka.p12"

    @property
    def neo4j_policy(self) -> Path:
        """Neo4j's SSL policy folder: ``private.key``, ``public.crt``, ``trusted/``,
        ``revoked/``."""
        return self.root / "neo4j-bolt"

    @property
    def sans_file(self) -> Path:
        return self.root / "sans.txt"


@contextmanager
def _private_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def _private_dir(path: Path) -> Path:
    with _private_umask():
        path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write a file that is 0600 from its first byte, atomically."""
    _private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_password(stack_dir: Path, name: str) -> str:
    """The password kept in ``<stack_dir>/secrets/<name>``, generated on first use."""
    existing = security.read_secret(stack_dir, name)
    if existing:
        return existing
    # URL- and config-safe characters: no quoting surprises in properties, JAAS or redis.conf.
    password = secrets.token_urlsafe(24)
    write_private(security.secrets_dir(stack_dir) / name, password + "\n")
    return password


def ensure_stack_secrets(settings: Settings) -> Settings:
    """The settings with every password the stack needs, generated where missing.

    Neo4j always needs one; secure mode adds Redis, every Kafka user and the keystore. The stack
    always uses its own Kafka users: ``kafka_username``/``kafka_password`` are for clients.
    """
    update: dict[str, object] = {}
    if not settings.neo4j_password:
        update["neo4j_password"] = ensure_password(settings.stack_dir, "neo4j")
    if settings.secure:
        if not settings.redis_password:
            update["redis_password"] = ensure_password(settings.stack_dir, "redis")
        for user in security.kafka_principals():
            ensure_password(settings.stack_dir, f"kafka-{user}")
        ensure_password(settings.stack_dir, KEYSTORE_SECRET)
        update["kafka_username"] = update["kafka_password"] = ""
    return settings.model_copy(update=update) if update else settings


def stack_secrets(settings: Settings) -> Settings:
    """Like ``ensure_stack_secrets`` but generates nothing (for status and down)."""
    update: dict[str, object] = {}
    if not settings.neo4j_password:
        update["neo4j_password"] = security.read_secret(settings.stack_dir, "neo4j")
    if settings.secure:
        if not settings.redis_password:
            update["redis_password"] = security.read_secret(settings.stack_dir, "redis")
        update["kafka_username"] = update["kafka_password"] = ""
    return settings.model_copy(update=update) if update else settings


# --- certificates ---------------------------------------------------------------------------


def subject_alt_names(settings: Settings) -> list[str]:
    """localhost and 127.0.0.1, plus every host the settings name (as DNS name or address)."""
    names = {"DNS:localhost", "IP:127.0.0.1"}
    for host in (settings.kafka_host, settings.neo4j_host, settings.redis_host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            names.add(f"DNS:{host}")
        else:
            names.add(f"IP:{host}")
    return sorted(names)


def _openssl(*args: str, env: Mapping[str, str] | None = None) -> None:
    try:
        with _private_umask():
            done = subprocess.run(
                ("openssl", *args),
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, **(env or {})},
                timeout=60,
            )
    except FileNotFoundError as exc:
        raise StackError("openssl not found: install it (e.g. apt-get install openssl)") from exc
    if done.returncode != 0:
        raise StackError(f"openssl {args[0]} failed: {done.stderr.strip()[-500:]}")


def _make_ca(files: TlsFiles) -> None:
    _openssl(
        "req", "-x509", "-new", "-newkey", KEY_BITS, "-noenc",
        "-keyout", str(files.ca_key), "-out", str(files.ca_cert),
        "-days", str(CERT_DAYS), "-subj", "/CN=autoglm local stack CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip


def _make_server_cert(files: TlsFiles, server: str, sans: list[str]) -> None:
    # Kafka's certificate is also the brokers' client certificate on the controller listener:
    # its CN is the broker principal.
    cn = BROKER_CN if server == "kafka" else f"autoglm-{server}"
    csr = files.root / f"{server}.csr"
    ext = files.root / f"{server}.ext"
    write_private(
        ext,
        f"subjectAltName={','.join(sans)}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n",
    )
    try:
        _openssl(
            "req", "-new", "-newkey", KEY_BITS, "-noenc",
            "-keyout", str(files.key(server)), "-out", str(csr), "-subj", f"/CN={cn}",
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(files.ca_cert),
            "-CAkey", str(files.ca_key), "-set_serial", str(secrets.randbits(63)),
            "-days", str(CERT_DAYS), "-extfile", str(ext), "-out", str(files.cert(server)),
        )  # fmt: skip
    finally:
        csr.unlink(missing_ok=True)
        ext.unlink(missing_ok=True)


def _make_kafka_keystore(files: TlsFiles, password: str) -> None:
    _openssl(
        "pkcs12", "-export", "-name", "kafka",
        "-in", str(files.cert("kafka")), "-inkey", str(files.key("kafka")),
        "-certfile", str(files.ca_cert), "-out", str(files.kafka_keystore),
        "-passout", "env:AUTOGLM_KEYSTORE_PASSWORD",
        env={"AUTOGLM_KEYSTORE_PASSWORD": password},
    )  # fmt: skip


def _make_neo4j_policy(files: TlsFiles) -> None:
    policy = _private_dir(files.neo4j_policy)
    _private_dir(policy / "trusted")
    _private_dir(policy / "revoked")
    write_private(policy / "private.key", files.key("neo4j").read_text())
    write_private(policy / "public.crt", files.cert("neo4j").read_text())
    write_private(policy / "trusted" / "ca.pem", files.ca_cert.read_text())


def ensure_tls(settings: Settings) -> TlsFiles:
    """The CA and server certificates, made when missing or when the hosts changed."""
    files = TlsFiles(_private_dir(security.tls_dir(settings.stack_dir)))
    if not (files.ca_cert.is_file() and files.ca_key.is_file()):
        _make_ca(files)
        files.sans_file.unlink(missing_ok=True)  # a new CA: every certificate is made again
    sans = subject_alt_names(settings)
    current = files.sans_file.read_text().split() if files.sans_file.is_file() else []
    missing = [s for s in SERVERS_WITH_CERTS if not files.cert(s).is_file()]
    if current != sans or missing or not files.kafka_keystore.is_file():
        for server in SERVERS_WITH_CERTS:
            _make_server_cert(files, server, sans)
        _make_kafka_keystore(files, ensure_password(settings.stack_dir, KEYSTORE_SECRET))
        _make_neo4j_policy(files)
        write_private(files.sans_file, "\n".join(sans) + "\n")
    for path in files.root.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)
    return files


# --- Kafka ----------------------------------------------------------------------------------


def _jaas(user: str, password: str) -> str:
    return (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{user}" password="{password}";'
    )


def _secret(settings: Settings, name: str) -> str:
    value = security.read_secret(settings.stack_dir, name)
    if not value:
        raise StackError(f"{security.secrets_dir(settings.stack_dir) / name} is missing")
    return value


def kafka_secure_properties(settings: Settings, port: int, controller_port: int) -> dict[str, str]:
    """What secure mode changes in a node's properties: listeners, TLS, SASL, authorizer."""
    files = TlsFiles(security.tls_dir(settings.stack_dir))
    keystore_password = _secret(settings, KEYSTORE_SECRET)
    host = settings.kafka_host
    return {
        "listeners": f"SASL_SSL://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"SASL_SSL://{host}:{port}",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "CONTROLLER:SSL,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": security.KAFKA_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": security.KAFKA_MECHANISM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": _jaas(
            security.BROKER, _secret(settings, f"kafka-{security.BROKER}")
        ),
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(files.kafka_keystore),
        "ssl.keystore.password": keystore_password,
        "ssl.key.password": keystore_password,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(files.ca_cert),
        "ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
        # Controllers only talk to brokers, which show the stack's certificate.
        "listener.name.controller.ssl.client.auth": "required",
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+).*$/$1/,DEFAULT",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{security.BROKER};User:{security.ADMIN}",
        "allow.everyone.if.no.acl.found": "false",
    }


def scram_users_env(settings: Settings) -> dict[str, str]:
    """The SCRAM users to create at format time, for ``KafkaTool.java format``."""
    lines = [f"{user} {_secret(settings, f'kafka-{user}')}" for user in security.kafka_principals()]
    return {SCRAM_USERS_ENV: "\n".join(lines)}


def admin_client_properties(settings: Settings) -> dict[str, str]:
    """Java client settings of the ``admin`` super user (the ACL tool)."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": security.KAFKA_MECHANISM,
        "sasl.jaas.config": _jaas(security.ADMIN, _secret(settings, f"kafka-{security.ADMIN}")),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(security.tls_dir(settings.stack_dir) / "ca.pem"),
        "request.timeout.ms": "30000",
        "default.api.timeout.ms": "60000",
    }


def acl_lines(settings: Settings) -> list[str]:
    return [entry.line() for entry in security.kafka_acls(settings)]


def acl_digest(settings: Settings, cluster_id: str) -> str:
    text = "\n".join([cluster_id, *acl_lines(settings)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
