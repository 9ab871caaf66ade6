"""ClientTLS: how the client checks the members' certificates and proves
its own, and which endpoints it reaches over TLS.

Theory of operation
-------------------
A client speaks TLS to every endpoint or to none. It does when it is given
a `ClientTLS`, or when an endpoint is written `https://host:port` (then
with a default `ClientTLS()`: the system's trusted roots, no client
certificate). An `http://` endpoint in a TLS client is a contradiction and
refused. `ca_file` names the CA that signed the members' certificates (None:
the system's roots); `cert_file` and `key_file` are the client's own
certificate, which a member started with `--client-cert-auth` requires.
gRPC checks the member's certificate against the name in the endpoint (put
the addresses clients use in the certificate's subject alternative names)
unless `server_name` says which name to expect. The files are read once,
when the client is made: a missing or unreadable file, or a certificate
without its key, raises `TLSConfigError` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from real.tls import TLSConfigError

_SCHEMES = ("http://", "https://", "grpc://")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientTLS:
    ca_file: Path | str | None = None
    cert_file: Path | str | None = None
    key_file: Path | str | None = None
    # The name to check the members' certificates for (default: the endpoint's host).
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials from the files (read now)."""
        if (self.cert_file is None) != (self.key_file is None):
            missing = "cert_file" if self.cert_file is None else "key_file"
            other = "key_file" if missing == "cert_file" else "cert_file"
            raise TLSConfigError(missing, f"needed with {other}")
        return grpc.ssl_channel_credentials(
            root_certificates=_read("ca_file", self.ca_file),
            private_key=_read("key_file", self.key_file),
            certificate_chain=_read("cert_file", self.cert_file))

    def channel_options(self) -> tuple[tuple[str, str], ...]:
        if self.server_name is None:
            return ()
        return (("grpc.ssl_target_name_override", self.server_name),)


def _read(field: str, path: Path | str | None) -> bytes | None:
    if path is None:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise TLSConfigError(field, f"cannot read {path}: {error.strerror or error}") from None
    if not data.strip():
        raise TLSConfigError(field, f"{path} is empty")
    return data


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """(`host:port`, scheme) from `host:port`, `http://host:port`,
    `https://host:port` or `grpc://host:port` (scheme "" when none is given)."""
    text = endpoint.strip()
    scheme = ""
    for prefix in _SCHEMES:
        if text.startswith(prefix):
            scheme, text = prefix[:-3], text[len(prefix):]
    text = text.rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"endpoint {endpoint!r}: expected host:port")
    return text, scheme


def resolve_tls(endpoints: tuple[str, ...], tls: ClientTLS | None) -> ClientTLS | None:
    """The TLS settings for a client of `endpoints` (as written), or None for
    plain text; ValueError when they disagree (see the module docstring)."""
    schemes = {split_endpoint(endpoint)[1] for endpoint in endpoints}
    if tls is None and "https" in schemes:
        tls = ClientTLS()
    if tls is not None and "http" in schemes:
        raise ValueError("a TLS client cannot use http:// endpoints: write them as https:// "
                         "or host:port")
    return tls


__all__ = ["ClientTLS", "TLSConfigError", "resolve_tls", "split_endpoint"]
