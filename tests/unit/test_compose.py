"""docker-compose.yml runs what the local stack runs, with the names the settings module reads."""

from __future__ import annotations

import re
import subprocess

import yaml

from autoglm.settings import PROJECT_ROOT, Settings

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
POM = (PROJECT_ROOT / "stack" / "pom.xml").read_text()


def _pom_version(name: str) -> str:
    match = re.search(rf"<{name}.version>([^<]+)</{name}.version>", POM)
    assert match, name
    return match.group(1)


def test_images_match_the_local_stack_versions():
    services = COMPOSE["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{_pom_version('kafka')}"
    neo4j_minor = ".".join(_pom_version("neo4j").split(".")[:2])
    assert services["neo4j"]["image"] == f"neo4j:{neo4j_minor}"
    assert services["redis"]["image"].startswith("redis:7")
    assert "jaeger" in services


def test_ports_match_the_default_settings():
    settings = Settings()
    services = COMPOSE["services"]
    assert f"127.0.0.1:{settings.kafka_port}:{settings.kafka_port}" in services["kafka"]["ports"]
    assert f"127.0.0.1:{settings.neo4j_port}:7687" in services["neo4j"]["ports"]
    assert f"127.0.0.1:{settings.redis_port}:6379" in services["redis"]["ports"]
    assert services["neo4j"]["environment"]["NEO4J_AUTH"].startswith(f"{settings.neo4j_user}/")


def test_every_published_port_is_bound_to_localhost():
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)


def test_no_password_is_written_in_compose():
    """Passwords come from the environment or .env, and compose refuses to start without."""
    text = (PROJECT_ROOT / "docker-compose.yml").read_text()
    assert "autoglm-secret" not in text
    env = COMPOSE["x-service-env"]
    for name in ("AUTOGLM_NEO4J_PASSWORD", "AUTOGLM_REDIS_PASSWORD"):
        assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", env[name]), env[name]
    assert re.fullmatch(
        r"neo4j/\$\{AUTOGLM_NEO4J_PASSWORD:\?[^}]+\}",
        COMPOSE["services"]["neo4j"]["environment"]["NEO4J_AUTH"],
    )
    assert "requirepass" not in " ".join(COMPOSE["services"]["redis"]["healthcheck"]["test"])


def test_env_files_are_ignored_by_git():
    ignored = subprocess.run(
        ["git", "check-ignore", ".env", ".env.local"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ignored.stdout.split() == [".env", ".env.local"]
    example = (PROJECT_ROOT / ".env.example").read_text()
    assert all(line.endswith("=") for line in example.splitlines() if line.startswith("AUTOGLM_"))


def test_service_env_names_are_settings_fields():
    fields = {f"AUTOGLM_{name.upper()}" for name in Settings.model_fields}
    for name in ("parser", "graph-builder", "inference", "trainer"):
        env = COMPOSE["services"][name]["environment"]
        assert set(env) <= fields, set(env) - fields
        assert Settings(**{k[len("AUTOGLM_") :].lower(): v for k, v in env.items()})
