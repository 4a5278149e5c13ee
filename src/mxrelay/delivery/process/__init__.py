"""Delivery in a child process of `mxrelay serve`: `supervisor.py` (the relay's side: start, wake,
watch, stop), `child.py` (the process's end of the link; the runtime composes what it runs) and
`ipc.py` (what they say to each other)."""
