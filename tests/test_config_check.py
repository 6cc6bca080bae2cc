"""check-config and `user add` resolve credentials as the service will (the unit's
LoadCredential= files), and check key/cert files and the TLS material (issue 17)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgeguard.cli import main
from edgeguard.secrets import use_credentials
from edgeguard.signing import generate_keypair

CONFIG = """\
site: {{id: hosp-01, name: 医院}}
mqtt:
  host: broker.example
  username: hosp-01
  password: {{credential: mqtt-password}}
{tls}signing:
  private_key: {{credential: signing-key}}
locations:
  er: {{label: 急诊}}
inputs:
  - {{type: gpio, name: er-button, pin: 17, location: er}}
"""


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    yield None
    use_credentials()


def _site(tmp_path: Path, tls: str = "") -> tuple[Path, Path]:
    creds = tmp_path / "etc-creds"
    creds.mkdir()
    generate_keypair(creds / "site.key")
    (creds / "mqtt-password").write_text("pw\n")
    unit = tmp_path / "edgeguard.service"
    unit.write_text(
        "[Service]\n"
        f"LoadCredential=signing-key:{creds}/site.key\n"
        f"LoadCredential=mqtt-password:{creds}/mqtt-password\nSetCredential=mqtt-password:\\n\n"
        f"LoadCredential=mqtt-client-key:{creds}/client.key\n"
        "SetCredential=mqtt-client-key:\\n\n"
    )
    config = tmp_path / "edgeguard.yaml"
    config.write_text(CONFIG.format(tls=tls), encoding="utf-8")
    return config, unit


def test_check_config_reads_the_units_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, unit = _site(tmp_path)
    assert main(["check-config", str(config), "--unit", str(unit)]) == 0
    assert "OK" in capsys.readouterr().out
    (tmp_path / "etc-creds" / "mqtt-password").unlink()
    assert main(["check-config", str(config), "--unit", str(unit)]) == 1
    err = capsys.readouterr().err
    assert f"credential 'mqtt-password': no file {tmp_path}/etc-creds/mqtt-password" in err


def test_check_config_with_a_credentials_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = _site(tmp_path)
    folder = tmp_path / "etc-creds"
    (folder / "signing-key").write_bytes((folder / "site.key").read_bytes())
    assert main(["check-config", str(config), "--credentials", str(folder)]) == 0
    assert "OK" in capsys.readouterr().out


def _cert(tmp_path: Path, name: str, issuer_key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(issuer_key or key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tmp_path / f"{name}.pem"


def _tls(tmp_path: Path, key: str) -> str:
    return (
        f"  tls:\n    ca_file: {tmp_path}/ca.pem\n    cert_file: {tmp_path}/client.pem\n"
        f"    key_file: {key}\n"
    )


def test_a_missing_client_key_fails_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _cert(tmp_path, "ca")
    _cert(tmp_path, "client")
    config, unit = _site(tmp_path, _tls(tmp_path, "{credential: mqtt-client-key}"))
    assert main(["check-config", str(config), "--unit", str(unit)]) == 1
    assert f"no file {tmp_path}/etc-creds/client.key" in capsys.readouterr().err
    (tmp_path / "etc-creds" / "client.key").write_text("")
    assert main(["check-config", str(config), "--unit", str(unit)]) == 1
    assert f"mqtt.tls: {tmp_path}/etc-creds/client.key is empty" in capsys.readouterr().err


def test_tls_material_is_tried(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _cert(tmp_path, "ca")
    _cert(tmp_path, "client")  # self-signed: the CA did not sign it
    _cert(tmp_path, "other")
    config, unit = _site(tmp_path, _tls(tmp_path, f"{tmp_path}/other.key"))
    assert main(["check-config", str(config), "--unit", str(unit)]) == 1
    assert "do not load or match" in capsys.readouterr().err
    config.write_text(CONFIG.format(tls=_tls(tmp_path, f"{tmp_path}/client.key")), encoding="utf-8")
    assert main(["check-config", str(config), "--unit", str(unit)]) == 1
    assert f"the CA {tmp_path}/ca.pem did not sign" in capsys.readouterr().err


def test_user_add_reads_the_units_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, unit = _site(tmp_path)
    config.write_text(
        config.read_text() + f"store: {{path: {tmp_path}/events.db}}\n", encoding="utf-8"
    )
    monkeypatch.setattr("sys.stdin.readline", lambda: "a-long-password-1\n")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    argv = ["user", "add", "wang", "--role", "admin", "-c", str(config), "--unit", str(unit)]
    assert main(argv) == 0
    assert "added wang (admin)" in capsys.readouterr().out
