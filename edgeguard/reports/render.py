"""The report written out: a PDF (matplotlib's PDF backend, fonts embedded) or an HTML folder
(index.html and one PNG a page)."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from edgeguard.reports.fonts import chart_style
from edgeguard.reports.pages import all_pages
from edgeguard.reports.text import say

if TYPE_CHECKING:
    from edgeguard.reports.figures import SiteFigures
    from edgeguard.web.config import Language


def _pages(figures: SiteFigures, language: Language, made: datetime | None) -> list:  # type: ignore[type-arg]
    return all_pages(figures, language, (made or datetime.now(UTC)).astimezone(figures.month.zone))


def write_pdf(
    figures: SiteFigures, language: Language, target: Path, made: datetime | None = None
) -> int:
    """The report as one PDF; returns its page count. Written beside, then renamed."""
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages

    partial = target.with_name(target.name + ".partial")
    with matplotlib.rc_context(cast(Any, chart_style(language))):
        pages = _pages(figures, language, made)
        title = f"{say(language, 'title')} {figures.site_name} {figures.month.label}"
        with PdfPages(partial, metadata={"Title": title, "Creator": "edgeguard"}) as pdf:
            for page in pages:
                pdf.savefig(page)
    partial.replace(target)
    return len(pages)


def write_html(
    figures: SiteFigures, language: Language, folder: Path, made: datetime | None = None
) -> list[Path]:
    """index.html with one PNG a page (page-1.png ...); returns the PNGs."""
    import matplotlib

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with matplotlib.rc_context(cast(Any, chart_style(language))):
        for number, page in enumerate(_pages(figures, language, made), start=1):
            path = folder / f"page-{number}.png"
            page.savefig(path)
            written.append(path)
    title = html.escape(f"{say(language, 'title')} · {figures.site_name} · {figures.month.label}")
    images = "\n".join(
        f'<img src="{p.name}" alt="{html.escape(say(language, "title"))} {n}" width="827">'
        for n, p in enumerate(written, start=1)
    )
    lang = "zh-CN" if language == "zh" else "en"
    (folder / "index.html").write_text(
        f'<!doctype html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n{images}\n</body></html>\n",
        encoding="utf-8",
    )
    return written
