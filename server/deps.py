"""FastAPI dependencies that hand a route the process's parts it uses (set up at start-up by
``server.app``): the container, and the transport's connection registry; and the client's
address."""

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


def client_host(request: Request) -> str | None:
    """The client's address as the ASGI scope has it. Behind a load balancer this is the
    address the balancer forwarded (``X-Forwarded-For``), but only when the balancer is listed
    in ``WASTECOACH_TRUSTED_PROXIES``: uvicorn rewrites the scope for those peers alone
    (``server.cli``), so a client cannot name an address of its choosing."""
    return request.client.host if request.client is not None else None


ContainerDep = Annotated[Container, Depends(container)]
ClientHostDep = Annotated[str | None, Depends(client_host)]
ConnectionsDep = Annotated[Connections, Depends(connections)]
