"""What `check-config` checks beyond the models: credentials resolved as the service will
(`--credentials`, `--unit`), every key and certificate file present, non-empty and readable,
and the TLS material tried (certificate and key load and match, the CA verifies it)."""

from __future__ import annotations

import argparse
import os
import ssl
from pathlib import Path
from typing import Any

from edgeguard.secrets import use_credentials
from edgeguard.unit_credentials import find_unit, read_unit


def credentials_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--credentials", type=Path, metavar="DIR",
        help="folder of the credentials (default: $CREDENTIALS_DIRECTORY, else the unit's "
        "LoadCredential= files)",
    )  # fmt: skip
    parser.add_argument(
        "--unit", type=Path, metavar="PATH",
        help="the unit whose LoadCredential= files to read (default: the installed "
        "edgeguard.service)",
    )  # fmt: skip


def apply_credentials(args: argparse.Namespace) -> None:
    """Resolve {credential: NAME} as the service will; ValueError if the unit is unreadable."""
    if args.credentials is not None or os.environ.get("CREDENTIALS_DIRECTORY"):
        use_credentials(directory=args.credentials)
        return
    unit = find_unit(args.unit)
    if args.unit is None and not unit.is_file():
        return  # no unit here: a {credential} then fails naming $CREDENTIALS_DIRECTORY
    try:
        use_credentials(unit=read_unit(unit))
    except OSError as exc:
        raise ValueError(f"cannot read the unit {unit}: {exc.strerror}") from exc


def _file_error(path: Path, what: str) -> str | None:
    try:
        with path.open("rb") as handle:
            empty = not handle.read(1).strip()
    except OSError as exc:
        return f"{what}: cannot read {path}: {exc.strerror}"
    return f"{what}: {path} is empty" if empty else None


def _tls_error(cert: Path, key: Path, ca: Path | None, what: str) -> str | None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        return f"{what}: certificate {cert} and key {key} do not load or match: {exc.reason}"
    return None if ca is None else _ca_error(cert, ca, what)


def _ca_error(cert: Path, ca: Path, what: str) -> str | None:
    from cryptography import x509

    try:
        leaf = x509.load_pem_x509_certificate(cert.read_bytes())
        issuers = x509.load_pem_x509_certificates(ca.read_bytes())
    except ValueError as exc:
        return f"{what}: not PEM certificates ({cert}, {ca}): {exc}"
    if any(_signed_by(leaf, issuer) for issuer in issuers):
        return None
    return f"{what}: the CA {ca} did not sign the certificate {cert}"


def _signed_by(leaf: Any, issuer: Any) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        leaf.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _tls_parts(config: Any) -> list[tuple[str, Path | None, Path | None, Path | None]]:
    parts = []
    for what, broker in (("mqtt.tls", config.mqtt), ("mqtt.secondary.tls", config.mqtt.secondary)):
        tls = broker.tls if broker is not None else None
        if tls is not None:
            parts.append((what, tls.cert_file, tls.key_file, tls.ca_file))
    web = config.console
    parts.append(("console", web.tls_cert, web.tls_key, None))
    return parts


def file_errors(config: Any) -> list[str]:
    """One line per missing, empty or unreadable key/cert file, then per TLS pair that fails."""
    errors = []
    key_error = _file_error(Path(config.signing.private_key), "signing.private_key")
    errors += [key_error] if key_error else []
    for what, cert, key, ca in _tls_parts(config):
        found = [_file_error(Path(p), what) for p in (cert, key, ca) if p is not None]
        missing = [e for e in found if e]
        errors += missing
        if not missing and cert is not None and key is not None:
            tls = _tls_error(Path(cert), Path(key), Path(ca) if ca else None, what)
            errors += [tls] if tls else []
    return errors
