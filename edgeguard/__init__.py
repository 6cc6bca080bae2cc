"""edgeguard: hospital security appliance daemon (panic buttons, cameras, police uplink)."""

__version__ = "0.1.0"
