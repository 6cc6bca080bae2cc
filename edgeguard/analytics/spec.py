"""The analysis settings of one camera as plain data (JSON-able): built in the daemon from the
config, sent to the capture process on its stdin, read there without pydantic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeguard.analytics.config import AnalyticsConfig

Point = tuple[float, float]
Polygon = tuple[Point, ...]


@dataclass(frozen=True)
class ZoneSpec:
    name: str
    polygon: Polygon
    crowd: dict[str, Any] | None = None  # CrowdSettings fields
    dwell: dict[str, Any] | None = None  # DwellSettings fields
    motion_alarm: dict[str, Any] | None = None  # {"days": [...], "start": "22:00", "end": "06:00"}


@dataclass(frozen=True)
class PipelineSpec:
    motion: dict[str, Any] = field(default_factory=dict)  # MotionSettings fields
    tamper: dict[str, Any] | None = field(default_factory=dict)  # TamperSettings; None: off
    zones: tuple[ZoneSpec, ...] = ()
    detect_interval: float = 1.0
    idle_interval: float = 10.0
    motion_events: str = "zones"  # zones | all | none

    def to_dict(self) -> dict[str, Any]:
        return {
            "motion": self.motion,
            "tamper": self.tamper,
            "zones": [z.__dict__ for z in self.zones],
            "detect_interval": self.detect_interval,
            "idle_interval": self.idle_interval,
            "motion_events": self.motion_events,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineSpec:
        zones = []
        for raw in data.get("zones", []):
            polygon = tuple((float(x), float(y)) for x, y in raw["polygon"])
            zones.append(ZoneSpec(**{**raw, "polygon": polygon}))
        masks = tuple(
            tuple((float(x), float(y)) for x, y in mask)
            for mask in data.get("motion", {}).get("masks", ())
        )
        return cls(
            motion={**data.get("motion", {}), "masks": masks},
            tamper=data.get("tamper"),
            zones=tuple(zones),
            detect_interval=float(data.get("detect_interval", 1.0)),
            idle_interval=float(data.get("idle_interval", 10.0)),
            motion_events=str(data.get("motion_events", "zones")),
        )



def pipeline_spec(config: AnalyticsConfig) -> PipelineSpec:
    """The pipeline's settings from a camera's `analytics` config (polygons normalised)."""
    motion = config.motion
    zones = tuple(
        ZoneSpec(
            name=zone.name,
            polygon=config.normalised(zone.polygon),
            crowd=zone.crowd.model_dump() if zone.crowd else None,
            dwell=zone.dwell.model_dump() if zone.dwell else None,
            motion_alarm=(
                {
                    "days": list(zone.motion_alarm.days),
                    "start": zone.motion_alarm.start.strftime("%H:%M"),
                    "end": zone.motion_alarm.end.strftime("%H:%M"),
                }
                if zone.motion_alarm
                else None
            ),
        )
        for zone in config.zones
    )
    return PipelineSpec(
        motion={
            "threshold": motion.threshold,
            "min_area": motion.min_area,
            "lighting_change": motion.lighting_change,
            "masks": tuple(config.normalised(mask) for mask in motion.masks),
        },
        tamper={"hold_s": config.tamper.hold} if config.tamper.enabled else None,
        zones=zones,
        detect_interval=config.detection.interval,
        idle_interval=config.detection.idle_interval,
        motion_events=config.motion_events,
    )
