"""TLS for outgoing clients: the system trust store, or ``SSL_CERT_FILE``."""

from __future__ import annotations

import ssl


def client_ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """A verifying client context; ``ca_file`` (``SSL_CERT_FILE``) replaces the
    default trust store, as companies behind TLS-inspecting proxies need."""
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    return ssl.create_default_context()
