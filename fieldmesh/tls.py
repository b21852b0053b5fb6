"""The project's own local CA and the embedded broker's server certificate.

`fieldmesh up --tls` (or FIELDMESH_MQTT_TLS_PORT) adds a TLS listener on 127.0.0.1; its
certificate is issued here by a CA generated once per state dir. Clients trust
`state_dir/tls/ca.pem` (`kernel.broker.ca_path`). Keys never leave the state dir (0600).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kernel.broker import ca_path
from kernel.settings import Settings

_CA_DAYS = 3650
_SERVER_DAYS = 825  # the longest validity clients accept for a server certificate


@dataclass(frozen=True, slots=True)
class BrokerCerts:
    ca: Path
    cert: Path
    key: Path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _ensure_ca(d: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_file, key_file = d / "ca.pem", d / "ca.key"
    if ca_file.exists() and key_file.exists():
        cert = x509.load_pem_x509_certificate(ca_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fieldmesh local CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_file, _key_pem(key))
    ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def ensure_broker_certs(settings: Settings) -> BrokerCerts:
    """The CA (created once) and a server certificate for 127.0.0.1 / localhost."""
    d = ca_path(settings).parent
    d.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _ensure_ca(d)
    out = BrokerCerts(d / "ca.pem", d / "server.pem", d / "server.key")
    if out.cert.exists() and out.key.exists():
        cert = x509.load_pem_x509_certificate(out.cert.read_bytes())
        fresh = cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
        if fresh and cert.issuer == ca_cert.subject:
            return out
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_SERVER_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(out.key, _key_pem(key))
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return out
