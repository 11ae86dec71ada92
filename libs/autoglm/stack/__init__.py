"""The local stack: Kafka, Neo4j and Redis as local processes, for machines without Docker.

``LocalStack(settings).up()`` starts whatever is not running and waits until each server
answers a real client request; ``status()`` and ``down()`` inspect and stop them. The CLI is
``autoglm stack up|status|down`` (``autoglm.stack.cli.stack_app``).
"""

from autoglm.stack.base import MissingJarsError, ServerStatus, StackError, State
from autoglm.stack.config import DEFAULT_LIB_DIR, SERVERS, default_lib_dir, ensure_jars
from autoglm.stack.manager import LocalStack

__all__ = [
    "DEFAULT_LIB_DIR",
    "SERVERS",
    "LocalStack",
    "MissingJarsError",
    "ServerStatus",
    "StackError",
    "State",
    "default_lib_dir",
    "ensure_jars",
]
