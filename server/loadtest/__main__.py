"""``python -m server.loadtest``: what ``wastecoach loadtest`` runs (see launcher.py)."""

from server.loadtest.launcher import main

main()
