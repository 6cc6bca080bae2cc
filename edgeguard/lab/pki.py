"""Development PKI: a throw-away CA plus server and client certificates for a lab broker.

Keys are EC P-256, signatures SHA-256, certificates valid for 10 years starting one day in
the past. Key files are unencrypted PEM with mode 0600. Everything is reused when present,
so several test runs (or processes) can share one directory.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

_VALIDITY = dt.timedelta(days=3650)
_BACKDATE = dt.timedelta(days=1)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CA_NAME = "edgeguard dev CA"


@dataclass(frozen=True)
class CertPair:
    """Paths of a PEM certificate and its PEM private key."""

    cert: Path
    key: Path


class DevPKI:
    """A development CA in ``directory`` (``ca.crt`` / ``ca.key``) that issues leaf certificates.

    Never use this for production: the CA key sits unencrypted next to the certificates.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._ca = CertPair(self.directory / "ca.crt", self.directory / "ca.key")
        if not _exists(self._ca):
            self._create_ca()
        self._ca_key = _load_key(self._ca.key)
        self._ca_cert = x509.load_pem_x509_certificate(self._ca.cert.read_bytes())

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) that clients and the broker trust."""
        return self._ca.cert

    def server(
        self,
        common_name: str = "localhost",
        hosts: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
    ) -> CertPair:
        """Return a serverAuth certificate for ``common_name`` with DNS/IP SANs for ``hosts``.

        Existing files for ``common_name`` are reused as they are (``hosts`` is then ignored).
        """
        pair = self._pair("server", common_name)
        if not _exists(pair):
            sans = [_san(host) for host in hosts]
            self._issue(pair, common_name, ExtendedKeyUsageOID.SERVER_AUTH, sans)
        return pair

    def client(self, common_name: str) -> CertPair:
        """Return a clientAuth certificate with subject CN ``common_name`` (the MQTT username)."""
        pair = self._pair("client", common_name)
        if not _exists(pair):
            self._issue(pair, common_name, ExtendedKeyUsageOID.CLIENT_AUTH, [])
        return pair

    def _pair(self, kind: str, common_name: str) -> CertPair:
        if not _SAFE_NAME.match(common_name):
            raise ValueError(f"unsupported common name for a lab certificate: {common_name!r}")
        stem = self.directory / f"{kind}-{common_name}"
        return CertPair(stem.with_suffix(".crt"), stem.with_suffix(".key"))

    def _create_ca(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(_CA_NAME)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = (
            _base_builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(ski, critical=False)
        )
        _write_pair(self._ca, key, builder.sign(key, hashes.SHA256()))
        log.info("created development CA in %s", self.directory)

    def _issue(
        self,
        pair: CertPair,
        common_name: str,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName],
    ) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        ca_ski = self._ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        builder = (
            _base_builder(_name(common_name), self._ca_cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        _write_pair(pair, key, builder.sign(self._ca_key, hashes.SHA256()))
        log.info("issued %s (CN=%s)", pair.cert, common_name)


def _exists(pair: CertPair) -> bool:
    return pair.cert.is_file() and pair.key.is_file()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edgeguard lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _base_builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now - _BACKDATE + _VALIDITY)
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{path} is not an EC private key")
    return key


def _write_pair(pair: CertPair, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    """Write key then certificate, each atomically, so a present cert implies a complete pair."""
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _atomic_write(pair.key, key_pem, 0o600)
    _atomic_write(pair.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.chmod(mode)  # os.open's mode is filtered by the umask
    tmp.replace(path)
