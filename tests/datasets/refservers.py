"""Real servers for the dataset-reference tests: a stdlib HTTP (or HTTPS) file server on 127.0.0.1 in a
thread of this process, and a throwaway certificate authority for its TLS.

    server = FileServer()                                  # FileServer(tls=make_tls(tmp_path)) for https
    url = server.serve("/table.npz", data, delay=2.0)      # GET answers after 2 s
    url = server.redirect("/moved.npz", "http://10.1.2.3/table.npz")
    server.posts                                           # [(path, body)] of every POST (webhooks)
    server.close()

`make_tls(directory)` writes a CA and a certificate for 127.0.0.1 signed by it: `.context` is the
server's SSL context, `.bundle` a CA file (certifi's authorities plus this one). A worker trusts it when
`TRUST_DIR` is on its PYTHONPATH and `SIMTRAIN_TEST_CA_BUNDLE` names the bundle (`trust/sitecustomize.py`):
the TLS handshake and the certificate check stay the real ones.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["TRUST_DIR", "FileServer", "Tls", "make_tls"]

TRUST_DIR = Path(__file__).resolve().parent / "trust"


@dataclass(frozen=True)
class Tls:
    context: ssl.SSLContext
    bundle: Path


def make_tls(directory: Path) -> Tls:
    """A CA, a server certificate for 127.0.0.1 signed by it, and the CA bundle a client should trust."""
    import certifi
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def cert(subject, issuer, public_key, signing_key, *, ca: bool, san=None) -> x509.Certificate:
        start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )  # fmt: skip
        if san is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert(name("simtrain test CA"), name("simtrain test CA"), ca_key.public_key(), ca_key, ca=True)
    san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    leaf = cert(name("127.0.0.1"), ca.subject, server_key.public_key(), ca_key, ca=False, san=san)
    pem = serialization.Encoding.PEM
    (directory / "server.pem").write_bytes(leaf.public_bytes(pem))
    (directory / "server.key").write_bytes(
        server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    bundle = directory / "ca-bundle.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + ca.public_bytes(pem))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "server.pem", directory / "server.key")
    return Tls(context, bundle)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        owner.seen.append(self.path)
        try:
            if self.path in owner.redirects:
                self._answer(302, b"", {"Location": owner.redirects[self.path]})
            elif self.path in owner.files:
                time.sleep(owner.delays.get(self.path, 0.0))
                self._answer(200, owner.files[self.path], {"Content-Type": "application/octet-stream"})
            else:
                self._answer(404, b"no such file", {})
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.owner.posts.append((self.path, body))
        self._answer(204, b"", {})

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FileServer
    tls: ssl.SSLContext | None = None

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):  # a client that went away
            super().handle_error(request, client_address)

    def get_request(self):  # the TLS handshake happens in the connection's own thread
        sock, address = super().get_request()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address


class FileServer:
    """See the module docstring."""

    def __init__(self, tls: Tls | None = None) -> None:
        self.files: dict[str, bytes] = {}
        self.delays: dict[str, float] = {}
        self.redirects: dict[str, str] = {}
        self.posts: list[tuple[str, bytes]] = []
        self.seen: list[str] = []
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._httpd.tls = tls.context if tls is not None else None
        self.base = f"{'https' if tls else 'http'}://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def serve(self, path: str, data: bytes, *, delay: float = 0.0) -> str:
        self.files[path], self.delays[path] = data, delay
        return self.base + path

    def redirect(self, path: str, location: str) -> str:
        self.redirects[path] = location
        return self.base + path

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
