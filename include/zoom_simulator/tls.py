"""TLS for the simulator: a throw-away self-signed certificate and the server-side SSL context.

Zoom is only reachable over HTTPS, and what a client pays for a connection (TCP plus a TLS
handshake) is what connection reuse saves, so the simulator can serve over TLS to make that cost
real and measurable. Serving needs only the stdlib ``ssl`` module; *making* a certificate uses the
``cryptography`` package when it is installed (imported here, lazily, so the simulator itself stays
stdlib + PyJWT) and the ``openssl`` command line tool otherwise.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path

#: Names the generated certificate is valid for: the simulator binds to 127.0.0.1 by default and
#: clients may equally write ``localhost``.
DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost")
CERT_NAME, KEY_NAME = "sim-cert.pem", "sim-key.pem"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def make_self_signed_cert(directory: str | Path | None = None, hosts: tuple[str, ...] = DEFAULT_HOSTS,
                          days: int = 30) -> tuple[Path, Path]:
    """Write a self-signed certificate and its private key; return ``(cert_path, key_path)``.

    The certificate carries every host as a subjectAltName (``IP:`` for addresses, ``DNS:`` for
    names), because clients match the URL's host against subjectAltName only, never the CN. It is
    its own trust anchor: a client trusts it by pointing ``verify``/``cafile`` at ``cert_path``,
    and a client using the system CA bundle rejects it, as it would any unknown certificate.
    The key is written readable by its owner only. ``directory`` defaults to a new temp dir.
    """
    out = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="zoom-sim-tls-"))
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out / CERT_NAME, out / KEY_NAME
    try:
        import cryptography  # noqa: F401  (only to choose the way; the work is in _with_cryptography)
    except ImportError:
        _with_openssl(cert_path, key_path, hosts, days)
    else:
        _with_cryptography(cert_path, key_path, hosts, days)
    key_path.chmod(0o600)
    return cert_path, key_path


def _with_cryptography(cert_path: Path, key_path: Path, hosts: tuple[str, ...], days: int) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())  # fast to make, and a cheap handshake
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "zoom-simulator"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Zoom API simulator (self-signed)")])
    alt_names: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(h)) if _is_ip(h) else x509.DNSName(h) for h in hosts]
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate a little clock skew
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        # Its own issuer, so marked as a CA that may sign only itself: that is what OpenSSL's
        # strict mode (Python >= 3.13's default context) wants of a trust anchor.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False),
                       critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _with_openssl(cert_path: Path, key_path: Path, hosts: tuple[str, ...], days: int) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("making a certificate needs the cryptography package or the openssl CLI")
    san = ",".join(f"IP:{h}" if _is_ip(h) else f"DNS:{h}" for h in hosts)
    subprocess.run(
        [exe, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key_path), "-out", str(cert_path), "-days", str(days),
         "-subj", f"/CN={hosts[0] if hosts else 'zoom-simulator'}/O=Zoom API simulator (self-signed)",
         "-addext", f"subjectAltName={san}",
         "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
         "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
         "-addext", "extendedKeyUsage=serverAuth"],
        check=True, capture_output=True,
    )


def server_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """The server side of the simulator's TLS: TLS 1.2 or later, this certificate and key.

    ALPN offers only ``http/1.1``: the server speaks HTTP/1.1 with keep-alive, nothing else.
    Loading happens here, at construction, so a wrong path fails when the simulator is built,
    not on the first client's handshake.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    context.set_alpn_protocols(["http/1.1"])
    return context
