"""The report's figures as JSON (`edgeguard report --json`) and as a few lines of text."""

from __future__ import annotations

from typing import Any

from edgeguard.ids import iso_ms
from edgeguard.reports.figures import SiteFigures, seconds_after
from edgeguard.reports.text import duration, share


def figures_json(figures: SiteFigures) -> dict[str, Any]:
    total = figures.month.seconds
    return {
        "site": figures.site_id,
        "month": figures.month.label,
        "time_zone": str(figures.month.zone),
        "from": iso_ms(figures.month.start),
        "until": iso_ms(figures.month.until),
        "alarms": len(figures.alarms),
        "security_alarms": len(figures.security),
        "excluded_tests": figures.excluded,
        "by_kind": figures.by_kind,
        "by_location": figures.by_location,
        "heatmap": figures.heatmap,
        "stages_s": {
            stage: {"count": d.count, "p50": d.p50, "p90": d.p90, "max": d.max}
            for stage, d in figures.stages.items()
        },
        "slowest": [
            {
                "event_id": a.event_id,
                "pressed": iso_ms(a.pressed),
                "location": a.location,
                "kind": a.kind,
                "acknowledged_s": seconds_after(a, "acknowledged"),
            }
            for a in figures.slowest
        ],
        "unanswered": [a.event_id for a in figures.unanswered],
        "open_at_end": [a.event_id for a in figures.open_alarms],
        "availability": {
            a.device: {
                "role": a.role,
                "online": a.time.share("online", total),
                "seconds": a.time.seconds,
                "outages": a.time.outages,
                "longest_outage_s": a.time.longest_outage_s,
            }
            for a in figures.availability
        },
        "coverage": {
            c.area: {
                "cameras": c.cameras,
                "covered": c.time.share("online", total),
                "gaps": c.time.outages,
                "longest_gap_s": c.time.longest_outage_s,
            }
            for c in figures.coverage
        },
        "appliance_down_s": figures.appliance_down_s,
        "evidence": {
            "files": figures.evidence,
            "bytes": figures.evidence_bytes,
            "pruned_folders": figures.pruned,
        },
        "todo": [{"what": key.removeprefix("todo."), **values} for key, values in figures.todo],
        "ledger_rows_read": figures.rows_read,
    }


def summary_lines(figures: SiteFigures) -> list[str]:
    ack = figures.stages["acknowledged"]
    total = figures.month.seconds
    coverage = min((c.time.share("online", total) for c in figures.coverage), default=None)
    return [
        f"{figures.site_id} {figures.month.label} ({figures.month.zone}): "
        f"{len(figures.alarms)} alarms, {len(figures.security)} panic/duress/intrusion/crowd, "
        f"{figures.excluded} tests kept out",
        f"police acknowledged: p50 {duration('en', ack.p50)}, p90 {duration('en', ack.p90)}, "
        f"{len(figures.unanswered)} never; {len(figures.open_alarms)} not reset at the end",
        f"lowest key-area coverage: {share(coverage) if coverage is not None else '-'}; "
        f"{len(figures.todo)} thing(s) to do",
    ]
