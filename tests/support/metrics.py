"""Scraping a process's ``/metrics`` over HTTP, as Prometheus does, and reading samples."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> Samples:
    """Every sample at ``url``, parsed by prometheus_client's own text-format parser."""
    async with httpx.AsyncClient() as http:
        response = await http.get(url, timeout=10)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def eventually(
    url: str, check: Callable[[Samples], bool], timeout: float = 15.0
) -> Samples:
    """Scrape until ``check`` holds. Another process (a worker) counts a scan after its last
    event reached the client, so the figure can trail the event by a moment."""
    deadline = time.monotonic() + timeout
    while True:
        samples = await scrape(url)
        if check(samples) or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.1)
