"""FastAPI dependencies that hand a route the process's parts it uses (set up at start-up by
``server.app``): the container, and the transport's connection registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.container import Container
from server.ws.registry import Connections


def container(request: Request) -> Container:
    built: Container = request.app.state.container
    return built


def connections(request: Request) -> Connections:
    registry: Connections = request.app.state.connections
    return registry


ContainerDep = Annotated[Container, Depends(container)]
ConnectionsDep = Annotated[Connections, Depends(connections)]
