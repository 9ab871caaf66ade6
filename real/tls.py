"""TLS for clients (gRPC) and mutual TLS between peers (the TCP transport),
from certificate files named in the configuration, with Python's `ssl`.

Theory of operation
-------------------
etcd's flags carry over: `--cert-file`/`--key-file` serve clients over TLS on
https listen-client URLs, `--trusted-ca-file` with `--client-cert-auth`
requires every client to present a certificate signed by that CA. Peers use
`--peer-cert-file`/`--peer-key-file`/`--peer-trusted-ca-file`, and peer
TLS is always mutual (etcd's `--peer-client-cert-auth` is implied): with
https peer URLs both ends of every peer connection verify the other's
certificate against the peer CA, so a process
without a certificate from that CA cannot complete a handshake: it can
neither send Raft messages nor snapshots to a member, nor receive any (the
handshake fails before the first frame is read, and the transport closes the
connection as it does for a malformed frame).

Peer certificates are checked for their chain, not their host name: members
dial each other by the address in their peer URLs, which may be an IP the
certificate does not name, and the CA is the cluster's own (issue a peer
CA per cluster). Client TLS follows gRPC's rules (the client checks the
server's name; use the name in the certificate's subject alternative names).

`load_*` read the files when the member starts; a missing or unreadable file,
a key that does not match its certificate, or a CA file without a
certificate raise `TLSConfigError` naming the setting.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from chainfire_core.errors import ChainfireError


class TLSConfigError(ChainfireError):
    """A TLS setting names a file that cannot be used."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"config: {field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSFiles:
    """One side's certificate, key and trusted CA (client or peer)."""

    cert_file: Path | None = None
    key_file: Path | None = None
    trusted_ca_file: Path | None = None
    client_cert_auth: bool = False
    prefix: str = ""  # "" for the client side, "peer-" for peers: error messages name the flag

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None or self.key_file is not None

    def check(self) -> None:
        """Raise TLSConfigError unless the files make a usable setup."""
        if (self.cert_file is None) != (self.key_file is None):
            missing = "cert-file" if self.cert_file is None else "key-file"
            raise TLSConfigError(self.prefix + missing, "needed with " + (
                f"--{self.prefix}key-file" if missing == "cert-file"
                else f"--{self.prefix}cert-file"))
        if self.client_cert_auth and self.trusted_ca_file is None:
            raise TLSConfigError(self.prefix + "trusted-ca-file",
                                 "needed with " + ("https peer URLs (peer TLS is mutual)"
                                                   if self.prefix else "--client-cert-auth"))
        for field, path in (("cert-file", self.cert_file), ("key-file", self.key_file),
                            ("trusted-ca-file", self.trusted_ca_file)):
            if path is not None and not path.is_file():
                raise TLSConfigError(self.prefix + field, f"{path} is not a readable file")
        if self.enabled:
            self._server_context()  # loads the pair and the CA: raises on a mismatch

    def _read(self, field: str, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as error:
            raise TLSConfigError(self.prefix + field,
                                 f"cannot read {path}: {error.strerror}") from None

    def _load_chain(self, context: ssl.SSLContext) -> None:
        assert self.cert_file is not None and self.key_file is not None
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as error:
            raise TLSConfigError(f"{self.prefix}cert-file/{self.prefix}key-file",
                                 f"cannot load {self.cert_file} with {self.key_file}: "
                                 f"{error}") from None

    def _load_ca(self, context: ssl.SSLContext) -> None:
        assert self.trusted_ca_file is not None
        try:
            context.load_verify_locations(cafile=self.trusted_ca_file)
        except (ssl.SSLError, OSError) as error:
            raise TLSConfigError(self.prefix + "trusted-ca-file",
                                 f"cannot load {self.trusted_ca_file}: {error}") from None

    def _server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._load_chain(context)
        if self.trusted_ca_file is not None:
            self._load_ca(context)
        context.verify_mode = ssl.CERT_REQUIRED if self.client_cert_auth else ssl.CERT_NONE
        return context

    # -- peers ---------------------------------------------------------------------

    def peer_server_context(self) -> ssl.SSLContext:
        """What a member accepts peer connections with."""
        assert self.enabled
        return self._server_context()

    def peer_client_context(self) -> ssl.SSLContext:
        """What a member dials its peers with: its own certificate, and the
        peer CA to verify theirs (chain only, see the module docstring)."""
        assert self.enabled
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False
        self._load_chain(context)
        if self.trusted_ca_file is not None:
            self._load_ca(context)
            context.verify_mode = ssl.CERT_REQUIRED
        else:
            context.verify_mode = ssl.CERT_NONE
        return context

    # -- clients (gRPC) ------------------------------------------------------------

    def grpc_server_credentials(self) -> grpc.ServerCredentials:
        assert self.cert_file is not None and self.key_file is not None
        self.check()
        key = self._read("key-file", self.key_file)
        cert = self._read("cert-file", self.cert_file)
        ca = (self._read("trusted-ca-file", self.trusted_ca_file)
              if self.trusted_ca_file is not None else None)
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                           require_client_auth=self.client_cert_auth)


__all__ = ["TLSConfigError", "TLSFiles"]
