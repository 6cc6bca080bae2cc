"""Configuration of a web console: the control-room console in `edgeguard run` and the police
dashboard in `edgeguard police` share this model (each with its own default port)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgeguard.config_base import StrictModel
from edgeguard.secrets import SecretPath

Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")
HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?")


class WebConfig(StrictModel):
    """A web console: where it listens, TLS, where its users are kept, and sessions."""

    enabled: bool = Field(default=True, description="Serve the console.")
    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address to listen on: 127.0.0.1 (this machine only) by default; the "
        "control room's LAN address or 0.0.0.0 to serve other machines (then configure TLS).",
    )
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port.")
    tls_cert: SecretPath | None = Field(
        default=None,
        description="Server certificate chain (PEM). With tls_key, the console is served over "
        "HTTPS only and its cookies are marked Secure.",
    )
    tls_key: SecretPath | None = Field(
        default=None, description="Server private key (PEM); a path, {credential} or {env}."
    )
    users_db: Path | None = Field(
        default=None,
        description="SQLite file of the console's users (scrypt password hashes); default "
        "`users.db` beside the event store (or the police database).",
    )
    session_idle_minutes: float = Field(
        default=480.0,
        gt=0,
        le=7 * 24 * 60,
        description="A session ends after this long without a request from its browser "
        "(the live alarm stream does not count as activity).",
    )
    session_max_hours: float = Field(
        default=24.0,
        gt=0,
        le=31 * 24,
        description="A session ends this long after login, active or not: log in once a shift.",
    )
    language: Language = Field(
        default="zh",
        description="UI language of new users and of the login page: `zh` (中文) or `en`; "
        "each user can choose their own.",
    )
    login_attempts: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Failed logins allowed per user name and per client address within "
        "login_lockout_minutes before further attempts are refused for that long.",
    )
    login_lockout_minutes: float = Field(
        default=5.0, gt=0, le=24 * 60, description="See login_attempts."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Host names browsers use to reach the console besides those always "
        "allowed (localhost, this machine's host name, `host`, and any IP address), e.g. "
        "`console.hospital.local`. A request naming another host in its Host header is "
        "refused (421): a page on a foreign name cannot reach the console (DNS rebinding).",
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if len(name) > 253 or not HOST_NAME.fullmatch(name):
                raise ValueError(f"allowed_hosts: {name!r} is not a host name (no scheme, no port)")
        return names

    @model_validator(mode="after")
    def _tls_pair(self) -> WebConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self

    @property
    def https(self) -> bool:
        return self.tls_cert is not None

    def users_path(self, beside: Path) -> Path:
        """The users database: users_db, else ``users.db`` in ``beside``'s folder."""
        return self.users_db if self.users_db is not None else beside.parent / "users.db"
