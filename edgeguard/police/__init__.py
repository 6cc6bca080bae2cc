"""The police receiver, `edgeguard police -c FILE`: subscribes to every site's messages,
verifies and stores them (docs/police.md), supervises the sites' links and publishes the
police's acknowledgements. The dashboard (edgeguard.police.web) is built on PoliceService."""
