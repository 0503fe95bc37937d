"""Throw-away TLS material for the fake SaaS servers.

Some clients refuse plain HTTP (the official ``pagerduty`` client insists on an
``https://`` base URL), so the fakes can serve TLS.  :func:`make_tls` uses
``trustme`` to mint a private CA and a server certificate valid for
``127.0.0.1`` and ``localhost``.  Clients trust it either explicitly
(``ssl.create_default_context(cafile=tls.ca_file)``) or, for code under test
and child processes, through ``SSL_CERT_FILE=<ca_file>`` (honoured by httpx,
httpx2 / the pagerduty client, aiohttp and the standard library).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = ["TlsMaterial", "make_tls"]


@dataclass(frozen=True)
class TlsMaterial:
    """A CA bundle for clients plus the matching server-side SSL context."""

    ca_file: Path
    """PEM file holding only the fake CA; point ``SSL_CERT_FILE`` at it."""

    server_context: ssl.SSLContext
    """Server context carrying the leaf certificate and its private key."""

    cert_file: Path
    """PEM file with the server's private key and certificate chain."""

    def client_context(self) -> ssl.SSLContext:
        """A fresh client context that trusts only the fake CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def env(self) -> dict[str, str]:
        """Environment variables that make a child process trust the fake CA."""
        return {"SSL_CERT_FILE": str(self.ca_file), "REQUESTS_CA_BUNDLE": str(self.ca_file)}


def make_tls(tmp_dir: Path) -> TlsMaterial:
    """Create a CA and a server certificate for 127.0.0.1/localhost in *tmp_dir*."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="firebell fake SaaS CA")
    leaf = ca.issue_cert("127.0.0.1", "localhost", "::1")
    ca_file = tmp_dir / "fake-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file = tmp_dir / "fake-server.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(server_context)
    return TlsMaterial(ca_file=ca_file, server_context=server_context, cert_file=cert_file)
