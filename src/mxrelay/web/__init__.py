"""The HTTP side: health probes, metrics endpoint, web UI and API."""
