"""The reference web client at ``/``: plain HTML, CSS and JavaScript in ``static/``, served as
they are (no build step, nothing from a CDN). It speaks only the documented protocol
(docs/protocol.md); app authors can read ``static/app.js`` as a worked example."""
