"""The site simulator's data: its settings, what it records per alarm, its counters, and the
sites' key and certificate files (edgeguard/lab/site_sim.py is the simulator itself).

Everything here is plain data that pickles, so worker processes receive the settings and send
back their traces and counters unchanged."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from edgeguard.lab.pki import DevPKI
from edgeguard.signing import Signer, generate_keypair, load_private_key

SITE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # docs/mqtt-api.md section 1


@dataclass(frozen=True)
class SimConfig:
    """How the simulated sites reach their broker and what they send.

    ``sites`` ids ``{prefix}{1..N:05d}`` unless ``site_ids`` names them. With ``pki_dir`` (a
    :class:`~edgeguard.lab.pki.DevPKI` directory whose CA the broker trusts) every site
    connects over TLS with a client certificate of its own, CN = its site id; without it,
    plain TCP. With ``police_keys`` (the police platform's receipt keys, ``.pub``) receipts are
    on: an alarm message is published again ``resend_after_s`` after its PUBACK until its
    signed receipt comes (docs/mqtt-api.md 4.7)."""

    directory: Path  # the sites' keys (cached across runs)
    port: int
    host: str = "localhost"
    sites: int = 0
    site_ids: tuple[str, ...] = ()
    prefix: str = "sim-"
    keys_dir: Path | None = None  # `{site}.pub` for the police; default directory/"police-keys"
    pki_dir: Path | None = None
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str = "edgeguard-{site}"  # as the daemon; "{site}" for the RabbitMQ lab
    keepalive: int = 8
    session_expiry: int = 604_800  # MQTT 5 Session Expiry Interval (s), as the daemon's default
    heartbeat_interval: float = 5.0
    heartbeat_qos: int = 0
    police_keys: tuple[Path, ...] = ()
    resend_after_s: float = 10.0
    resend_max_s: float = 120.0  # each wait for a receipt doubles up to this, as the daemon's
    subscribe_receipts: bool | None = None  # default: when receipts are on (see site_sim.py)
    puback_timeout_s: float = 30.0  # published again after this without a PUBACK
    connect_timeout_s: float = 30.0
    connect_rate: float = 100.0  # new connections per second, all processes together
    max_connecting: int = 8  # TLS handshakes at once, per process
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 15.0
    processes: int = 0  # 0: on the caller's event loop; k: k worker processes
    site_name: str = "模拟医院"
    gc_freeze: bool | None = None  # gc.freeze() once connected; None: see SiteSimulator.start
    seed: int | None = None  # storms' random times

    def __post_init__(self) -> None:
        if self.protocol not in ("5", "3.1.1"):
            raise ValueError(f"protocol must be '5' or '3.1.1', not {self.protocol!r}")
        if "{site}" not in self.client_id:
            raise ValueError("client_id must contain {site}: each site needs its own session")
        if self.heartbeat_interval <= 0 or self.resend_after_s <= 0 or self.connect_rate <= 0:
            raise ValueError("heartbeat_interval, resend_after_s and connect_rate must be > 0")
        if self.heartbeat_qos not in (0, 1):
            raise ValueError("heartbeat_qos must be 0 or 1")
        if self.processes < 0 or self.max_connecting < 1:
            raise ValueError("processes must be >= 0 and max_connecting >= 1")
        for site in self.site_list():
            if not SITE_ID.match(site) or site == "police":
                raise ValueError(f"not a valid site id: {site!r}")

    def site_list(self) -> list[str]:
        if self.site_ids:
            return list(self.site_ids)
        return [f"{self.prefix}{i:05d}" for i in range(1, self.sites + 1)]

    @property
    def police_keys_dir(self) -> Path:
        return self.keys_dir if self.keys_dir is not None else self.directory / "police-keys"

    @property
    def receipts(self) -> bool:
        return bool(self.police_keys)

    @property
    def subscribes_receipts(self) -> bool:
        return self.receipts if self.subscribe_receipts is None else self.subscribe_receipts


@dataclass
class AlarmTrace:
    """One simulated alarm (a `new` message): when it was raised, first published, first
    PUBACKed and first receipted, on both clocks. ``*_mono`` is ``time.monotonic()``, which on
    Linux is the system-wide CLOCK_MONOTONIC: comparable across processes of one machine (a
    receiver's own monotonic stamps included); ``*_wall`` is ``time.time()``. Publish → stored
    is ``parse_iso(stored_at) - published_wall`` (whole milliseconds, the police's clock), or
    bounded above by ``receipt_mono - published_mono``."""

    site: str
    event_id: str
    seq: int
    source: str
    raised_mono: float
    raised_wall: float
    published_mono: float | None = None
    published_wall: float | None = None
    puback_mono: float | None = None
    puback_wall: float | None = None
    receipt_mono: float | None = None
    receipt_wall: float | None = None
    stored_at: str | None = None  # the first receipt's `stored_at`: the police's wall clock
    receiver: str | None = None  # the receiver that stored it (its receipt's `receiver`)
    publishes: int = 0  # times published: 1, more after a lost link or a missing receipt
    receipts: int = 0  # genuine receipts received for it (a resend gets one of its own)

    @property
    def key(self) -> tuple[str, str, int]:
        """What receivers dedupe by: (site, event_id, seq)."""
        return self.site, self.event_id, self.seq

    def done(self, receipts: bool) -> bool:
        """Settled: receipted (receipts on), or PUBACKed (off)."""
        return (self.receipt_mono if receipts else self.puback_mono) is not None


@dataclass
class SimStats:
    """Counters (since start) and gauges (now) of the simulator; summed over processes."""

    sites: int = 0
    connected: int = 0  # gauge: sites with a live session
    killed: int = 0  # gauge
    silenced: int = 0  # gauge
    storm_pending: int = 0  # gauge: storm alarms not raised yet
    unsettled: int = 0  # gauge: alarms raised and not yet receipted (PUBACKed without receipts)
    connects: int = 0  # sessions opened (CONNACK accepted)
    connect_failures: int = 0  # refused, timed out or unreachable
    links_lost: int = 0  # sessions that ended other than by stop()
    heartbeats: int = 0
    ticks: int = 0  # heartbeat timer ticks (10 a second per process)
    ticks_late: int = 0  # ticks handled more than a tick (0.1 s) after their time
    ticks_skipped: int = 0  # ticks dropped: the loop fell more than a whole interval behind
    tick_lag_s: float = 0.0  # sum of the ticks' lags: tick_lag_s / ticks is the mean
    statuses: int = 0  # retained status messages published (online, offline)
    alarms: int = 0  # raised
    alarms_pubacked: int = 0
    alarms_receipted: int = 0
    alarm_publishes: int = 0  # first publishes and every resend
    resent_no_puback: int = 0  # published again: no PUBACK in time, or the link went down
    resent_no_receipt: int = 0  # published again: no receipt resend_after_s after the PUBACK
    puback_refused: int = 0  # MQTT 5 PUBACK with a failure reason (e.g. 0x87 not authorized)
    receipts: int = 0  # genuine receipts received (duplicates included)
    receipts_rejected: int = 0  # forged, misdirected or malformed (receipts.parse_receipt)
    receipts_unknown: int = 0  # genuine, but for no alarm of this run
    acks: int = 0  # police acks received (valid ones)
    acks_rejected: int = 0
    subscribe_refused: int = 0
    # the simulator's process(es): with processes=0 the caller's, whatever else runs in it
    cpu_s: float = 0.0  # CPU time (user + system) since the process started
    rss_mb: float = 0.0  # resident memory now
    processes: int = 1

    def __add__(self, other: SimStats) -> SimStats:
        return SimStats(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                           for f in fields(self)})  # fmt: skip


@dataclass(frozen=True)
class SiteIdentity:
    """A site's files: its Ed25519 signing key (as `edgeguard keygen` makes it) and, with TLS,
    its client certificate."""

    site: str
    signing_key: Path
    cert: Path | None = None
    cert_key: Path | None = None
    ca_file: Path | None = None

    def signer(self) -> Signer:
        return Signer(load_private_key(self.signing_key))


@dataclass
class Prepared:
    identities: list[SiteIdentity] = field(default_factory=list)
    keys_made: int = 0
    certs_made: int = 0


def prepare_sites(config: SimConfig, sites: list[str]) -> Prepared:
    """The sites' signing keys (``directory/sites/{site}.key`` and ``.pub``), their public keys
    for the police (``{keys_dir}/{site}.pub``) and, with ``pki_dir``, their client
    certificates; whatever exists is reused, so a second run costs only the reads."""
    out = Prepared()
    keys = config.directory / "sites"
    police = config.police_keys_dir
    police.mkdir(parents=True, exist_ok=True)
    pki = DevPKI(config.pki_dir) if config.pki_dir is not None else None
    for site in sites:
        private = keys / f"{site}.key"
        if not private.is_file():
            generate_keypair(private, overwrite=True)  # its .pub beside it
            out.keys_made += 1
        pem = private.with_suffix(".pub").read_bytes()
        pub = police / f"{site}.pub"
        if not pub.is_file() or pub.read_bytes() != pem:
            pub.write_bytes(pem)
        if pki is None:
            out.identities.append(SiteIdentity(site, private))
            continue
        had = (pki.directory / f"client-{site}.crt").is_file()
        pair = pki.client(site)
        out.certs_made += 0 if had else 1
        out.identities.append(SiteIdentity(site, private, pair.cert, pair.key, pki.ca_file))
    return out
