"""mxrelay: an outbound email relay that refuses undeliverable recipients at RCPT time, keeps a record
of every message and delivers through Microsoft Graph or an SMTP smarthost from a durable queue."""

__version__ = "0.1.0"
