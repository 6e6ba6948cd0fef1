"""The load-test harness, ``wastecoach loadtest``: simulated app users on Locust.

Not part of any server or worker process. Locust monkeypatches the standard library with gevent
when it is imported, so only ``locustfile.py`` and ``users.py`` import it, and only in the
harness's own processes (``python -m server.loadtest`` runs Locust in a child process; the
``wastecoach`` command hands over to that with exec). The harness speaks the documented protocol
through ``protocol`` and imports nothing else of ours; an import-linter contract in
pyproject.toml keeps every other module of server and workers from importing it. Locust and
the rest (hdrhistogram, matplotlib, websocket-client, prometheus-client) come with the
``loadtest`` extra.
"""
