"""Delivery to an SMTP smarthost (`MXRELAY_DELIVERY=smtp`), over the shared upstream pool."""

from mxrelay.delivery.smarthost.transport import SmarthostTransport

__all__ = ["SmarthostTransport"]
