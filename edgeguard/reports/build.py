"""One report from a config and a month: the store read, the figures computed, the files
written."""

from __future__ import annotations

import logging
from pathlib import Path

from edgeguard.config import EdgeguardConfig
from edgeguard.reports.figures import SiteFigures, compute
from edgeguard.reports.ledger import read_month
from edgeguard.reports.month import report_month, time_zone
from edgeguard.store import Store
from edgeguard.web.config import Language

logger = logging.getLogger(__name__)


def build_report(
    config: EdgeguardConfig, month: str, zone: str | None = None, db: Path | None = None
) -> SiteFigures:
    window = report_month(month, time_zone(zone))
    store = Store(db if db is not None else Path(config.store.path), readonly=True)
    try:
        rows = read_month(store.conn, window)
    finally:
        store.close()
    return compute(config, window, rows)


def write_outputs(
    figures: SiteFigures, language: Language, pdf: Path | None, html: Path | None
) -> list[Path]:
    from edgeguard.reports.render import write_html, write_pdf

    written: list[Path] = []
    if pdf is not None:
        pages = write_pdf(figures, language, pdf)
        logger.info("report %s: %d pages in %s", figures.month.label, pages, pdf)
        written.append(pdf)
    if html is not None:
        write_html(figures, language, html)
        written.append(html / "index.html")
    return written
