"""Types shared by the local-stack modules: the error raised to users and a server's status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

State = Literal["running", "stopped", "foreign"]
"""``running``: a process this stack started is alive; ``stopped``: nothing holds the ports;
``foreign``: something this stack did not start holds a port of the server."""


class StackError(Exception):
    """A server could not be started or stopped; the message is meant for the user as is."""


class MissingJarsError(StackError):
    """The Kafka or Neo4j jars have not been fetched yet."""


@dataclass(frozen=True)
class ServerStatus:
    """What ``LocalStack`` knows about one server."""

    name: str
    address: str
    pid: int | None
    state: State
    detail: str = ""
