"""One module per ``stock`` command; each exposes a function returning an exit code."""
