"""Debian's Noto CJK fonts for the charts, embedded in the PDF (Type 42: the text stays text,
so pdftotext and a screen reader find it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Debian's fonts-noto-cjk; a font file given to the report replaces them.
NOTO_CJK = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
)
FAMILY = "Noto Sans CJK SC"


class FontError(RuntimeError):
    """No font that can write the report's language."""


def chart_style(language: str, font_files: tuple[Path, ...] = NOTO_CJK) -> dict[str, Any]:
    """matplotlib settings for the report (used in an rc_context: nothing global changes)."""
    from matplotlib import font_manager

    present = [path for path in font_files if path.is_file()]
    for path in present:
        font_manager.fontManager.addfont(str(path))
    if not present and language == "zh":
        raise FontError(
            "no Chinese font: install Debian's fonts-noto-cjk "
            f"(looked for {', '.join(str(p) for p in font_files)}), or use --language en"
        )
    family = [FAMILY, "DejaVu Sans"] if present else ["DejaVu Sans"]
    return {
        "font.family": family,
        "pdf.fonttype": 42,
        "axes.unicode_minus": False,  # the CJK fonts have no U+2212
        "font.size": 9,
        "axes.titlesize": 11,
        "axes.titleweight": "bold",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "savefig.dpi": 110,
    }
