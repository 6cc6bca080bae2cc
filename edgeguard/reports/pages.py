"""The report's pages as matplotlib figures (A4 portrait), one function a page."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING

from edgeguard.reports.figures import STAGES, SiteFigures, seconds_after
from edgeguard.reports.text import duration, say, share, size

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from edgeguard.web.config import Language

A4 = (8.27, 11.69)
INK, MUTED, ALERT, GOOD = "#1f2d3d", "#6b7785", "#c0392b", "#2e7d32"
BAR = "#2f6fa3"


def _page(figures: SiteFigures, language: Language, title_key: str) -> Figure:
    from matplotlib.figure import Figure

    page = Figure(figsize=A4)
    local = figures.month.local(figures.month.start)
    month = say(language, "month", year=local.year, month=local.month)
    page.text(
        0.06,
        0.965,
        f"{say(language, 'title')} · {month}",
        fontsize=15,
        fontweight="bold",
        color=INK,
    )
    page.text(0.06, 0.945, figures.site_name, fontsize=10, color=MUTED)
    page.text(0.06, 0.915, say(language, title_key), fontsize=13, fontweight="bold", color=BAR)
    return page


def _location_label(figures: SiteFigures, key: str) -> str:
    return figures.labels.get(key, key)


def summary_page(figures: SiteFigures, language: Language, made: datetime) -> Figure:
    page = _page(figures, language, "page.summary")
    zone = str(figures.month.zone)
    page.text(
        0.94,
        0.945,
        say(language, "made", at=made.strftime("%Y-%m-%d %H:%M"), zone=zone),
        fontsize=8,
        color=MUTED,
        ha="right",
    )
    tiles = _summary_tiles(figures, language)
    for index, (label, value, alert) in enumerate(tiles):
        x, y = 0.06 + (index % 2) * 0.45, 0.84 - (index // 2) * 0.085
        page.text(x, y, value, fontsize=20, fontweight="bold", color=ALERT if alert else INK)
        page.text(x, y - 0.022, label, fontsize=9, color=MUTED)
    _per_day(page.add_axes((0.08, 0.33, 0.86, 0.15)), figures, language)
    page.text(0.06, 0.27, say(language, "todo.title"), fontsize=12, fontweight="bold", color=INK)
    todo = [say(language, key, **_shown(values, language)) for key, values in figures.todo]
    lines = todo[:10] or [say(language, "todo.none")]
    for index, line in enumerate(lines):
        colour = ALERT if todo else GOOD
        page.text(0.08, 0.24 - index * 0.02, f"• {line}", fontsize=9.5, color=colour)
    return page


def _shown(values: dict[str, object], language: Language) -> dict[str, object]:
    shown = dict(values)
    if isinstance(values.get("share"), float):
        shown["share"] = share(float(values["share"]))  # type: ignore[arg-type]
    if isinstance(values.get("duration"), float):
        shown["duration"] = duration(language, float(values["duration"]))  # type: ignore[arg-type]
    return shown


def _summary_tiles(figures: SiteFigures, language: Language) -> list[tuple[str, str, bool]]:
    ack = figures.stages["acknowledged"]
    total = figures.month.seconds
    coverage = min((a.time.share("online", total) for a in figures.coverage), default=None)
    links = [a for a in figures.availability if a.role == "police_link"]
    link = min((a.time.share("online", total) for a in links), default=None)
    return [
        (say(language, "fig.alarms"), str(len(figures.alarms)), False),
        (say(language, "fig.security"), str(len(figures.security)), False),
        (say(language, "fig.ack_p50"), duration(language, ack.p50), False),
        (say(language, "fig.ack_p90"), duration(language, ack.p90), False),
        (say(language, "fig.unanswered"), str(len(figures.unanswered)), bool(figures.unanswered)),
        (say(language, "fig.open"), str(len(figures.open_alarms)), bool(figures.open_alarms)),
        (
            say(language, "fig.coverage"),
            share(coverage) if coverage is not None else "—",
            coverage is not None and coverage < 1.0,
        ),
        (
            say(language, "fig.link"),
            share(link) if link is not None else "—",
            link is not None and link < 0.999,
        ),
    ]


def _per_day(axes: Axes, figures: SiteFigures, language: Language) -> None:
    days = Counter(figures.month.local(a.pressed).day for a in figures.security)
    last = figures.month.local(figures.month.end).replace(day=1)
    count = (last - figures.month.local(figures.month.start).replace(day=1)).days or 31
    axes.bar(range(1, count + 1), [days.get(d, 0) for d in range(1, count + 1)], color=BAR)
    axes.set_title(say(language, "fig.security"), loc="left")
    axes.set_xlim(0.5, count + 0.5)
    axes.set_ylabel(say(language, "chart.count"))


def alarms_page(figures: SiteFigures, language: Language) -> Figure:
    page = _page(figures, language, "page.alarms")
    kinds = list(figures.by_kind.items())[::-1]
    by_kind = page.add_axes((0.3, 0.66, 0.64, 0.22))
    by_kind.barh([say(language, f"kind.{k}") for k, _ in kinds], [n for _, n in kinds], color=BAR)
    by_kind.set_title(say(language, "chart.by_kind"), loc="left")
    places = list(figures.by_location.items())[:12][::-1]
    by_place = page.add_axes((0.3, 0.37, 0.64, 0.24))
    by_place.barh(
        [_location_label(figures, k) for k, _ in places], [n for _, n in places], color=BAR
    )
    by_place.set_title(say(language, "chart.by_location"), loc="left")
    heat = page.add_axes((0.1, 0.06, 0.8, 0.24))
    image = heat.imshow(figures.heatmap, aspect="auto", cmap="Reds", interpolation="nearest")
    heat.set_yticks(range(7), say(language, "chart.weekdays").split(","))
    heat.set_xticks(range(0, 24, 2))
    heat.set_xlabel(say(language, "chart.hour"))
    heat.set_title(say(language, "chart.heatmap"), loc="left")
    page.colorbar(image, ax=heat, label=say(language, "chart.count"), fraction=0.04)
    return page


def response_page(figures: SiteFigures, language: Language) -> Figure:
    page = _page(figures, language, "page.response")
    axes = page.add_axes((0.25, 0.62, 0.7, 0.26))
    values = [
        [s for a in figures.security if (s := seconds_after(a, st)) is not None] for st in STAGES
    ]
    shown = [(st, v) for st, v in zip(STAGES, values, strict=True) if v]
    if shown:
        axes.boxplot(
            [[max(x, 0.001) for x in v] for _, v in shown],
            orientation="horizontal",
            whis=(0, 100),
            tick_labels=[say(language, f"stage.{st}") for st, _ in shown],
        )
        axes.set_xscale("log")
    axes.set_xlabel(say(language, "chart.seconds"))
    axes.invert_yaxis()
    _stage_table(page, figures, language)
    _slowest_table(page, figures, language)
    return page


def _stage_table(page: Figure, figures: SiteFigures, language: Language) -> None:
    rows = [
        [
            say(language, f"stage.{st}"),
            str(d.count),
            duration(language, d.p50),
            duration(language, d.p90),
            duration(language, d.max),
        ]
        for st, d in figures.stages.items()
    ]
    axes = page.add_axes((0.06, 0.42, 0.88, 0.15))
    axes.axis("off")
    header = [say(language, "table.stage"), say(language, "table.count"), "P50", "P90", "max"]
    axes.table(cellText=rows, colLabels=header, loc="upper center", cellLoc="left")


def _slowest_table(page: Figure, figures: SiteFigures, language: Language) -> None:
    page.text(0.06, 0.39, say(language, "table.slowest"), fontsize=11, fontweight="bold")
    rows = []
    for trail in figures.slowest:
        when = figures.month.local(trail.pressed).strftime("%m-%d %H:%M:%S")
        ack = seconds_after(trail, "acknowledged")
        rows.append(
            [
                when,
                _location_label(figures, trail.location)[:18],
                say(language, f"kind.{trail.kind}"),
                duration(language, ack) if ack is not None else say(language, "table.never"),
                trail.police.get("acknowledged", "")[:16],
            ]
        )
    if not rows:
        return
    axes = page.add_axes((0.06, 0.05, 0.88, 0.32))
    axes.axis("off")
    header = [say(language, f"table.{k}") for k in ("when", "where", "kind", "ack", "by")]
    axes.table(cellText=rows, colLabels=header, loc="upper center", cellLoc="left")


def availability_page(figures: SiteFigures, language: Language) -> Figure:
    page = _page(figures, language, "page.availability")
    total = figures.month.seconds
    items = figures.availability[:24][::-1]
    axes = page.add_axes((0.3, 0.42, 0.62, 0.46))
    shares = [a.time.share("online", total) * 100 for a in items]
    colours = [GOOD if s >= 99.9 else ALERT for s in shares]
    axes.barh(
        [f"{a.device} · {say(language, f'role.{a.role}')}" for a in items], shares, color=colours
    )
    axes.set_xlim(min([*shares, 99.0]) - 0.5, 100)
    axes.set_title(say(language, "chart.availability"), loc="left")
    axes.set_xlabel(f"{say(language, 'chart.share')} (%)")
    areas = figures.coverage[::-1]
    cover = page.add_axes((0.3, 0.08, 0.62, 0.26))
    covered = [a.time.share("online", total) * 100 for a in areas]
    cover.barh(
        [f"{a.area} ({', '.join(a.cameras)})"[:34] for a in areas],
        covered,
        color=[GOOD if c >= 100 else ALERT for c in covered],
    )
    cover.set_xlim(min([*covered, 99.0]) - 0.5, 100)
    cover.set_title(say(language, "chart.coverage"), loc="left")
    cover.set_xlabel(f"{say(language, 'chart.share')} (%)")
    return page


def evidence_page(figures: SiteFigures, language: Language) -> Figure:
    page = _page(figures, language, "page.evidence")
    lines = [
        say(
            language,
            "evidence.kept",
            snapshots=figures.evidence.get("snapshot", 0),
            clips=figures.evidence.get("clip", 0),
            size=size(figures.evidence_bytes),
        ),
        say(language, "evidence.pruned", n=figures.pruned),
        say(language, "evidence.excluded", n=figures.excluded),
        say(language, "patrols.none"),
        say(language, "evidence.rows", n=figures.rows_read),
    ]
    for index, line in enumerate(lines):
        page.text(0.08, 0.87 - index * 0.03, f"• {line}", fontsize=10, color=INK)
    return page


def all_pages(figures: SiteFigures, language: Language, made: datetime) -> list[Figure]:
    return [
        summary_page(figures, language, made),
        alarms_page(figures, language),
        response_page(figures, language),
        availability_page(figures, language),
        evidence_page(figures, language),
    ]
