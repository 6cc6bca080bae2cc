"""Video analytics configuration of a camera (pydantic v2; `cameras[].analytics`).

Zone polygons and masks are given in pixels of a reference image of `frame_size` (the image the
installer drew them on, e.g. a snapshot of the analysed stream); they are scaled to whatever
size the stream delivers."""

from __future__ import annotations

from datetime import time as clock_time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from edgeguard.alarm_model import AlarmKind
from edgeguard.config_base import Name, StrictModel

Point = tuple[float, float]
PolygonPx = Annotated[
    list[Point],
    Field(min_length=3, max_length=64, description="Vertices [x, y] in pixels of `frame_size`."),
]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALL_DAYS: list[Day] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class MotionConfig(StrictModel):
    """Motion detection on a small grey frame; it gates the person detector."""

    threshold: int = Field(default=25, ge=1, le=255, description="Grey-level change per pixel.")
    min_area: float = Field(
        default=0.002, gt=0, lt=1, description="Smallest moving blob, as a fraction of the frame."
    )
    lighting_change: float = Field(
        default=0.4,
        gt=0,
        le=1,
        description="A change over this fraction of the frame at once is taken for a lighting "
        "or exposure change: the background is re-learnt instead of reporting motion.",
    )
    masks: list[PolygonPx] = Field(
        default_factory=list,
        description="Areas where motion is ignored (trees, screens, a busy road), in pixels.",
    )


class DetectionConfig(StrictModel):
    """The person detector (COCO-SSD MobileNetV2 on onnxruntime), run only when there is motion
    in or near a zone."""

    model: Path | None = Field(
        default=None,
        description="ONNX model file; default: coco_ssd_mobilenet_v2.onnx from the model search "
        "path (scripts/make_person_model.sh makes it; its sha256 is checked).",
    )
    interval: float = Field(
        default=1.0,
        ge=0.1,
        le=60,
        description="Seconds between detections while there is motion near a zone.",
    )
    idle_interval: float = Field(
        default=10.0,
        ge=1,
        le=600,
        description="Seconds between detections without motion (so that people standing still "
        "are still counted).",
    )
    min_score: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="Detector confidence floor (0.2: precision 1.0, recall 0.96 on the "
        "labelled clip, docs/analytics-people.md; check it on the scene's own footage).",
    )


class TamperConfig(StrictModel):
    """View tampering: covered, blinded, defocused or moved, held before it is reported."""

    enabled: bool = Field(default=True, description="Raise `camera_tamper` from the image.")
    hold: float = Field(
        default=5.0,
        ge=1,
        le=120,
        description="Seconds a condition must last before the alarm (and be gone before the "
        "restore): a person walking close by does not trigger it.",
    )


class ScheduleConfig(StrictModel):
    """When a zone's motion is an alarm, e.g. a pharmacy store room at night."""

    days: list[Day] = Field(
        default_factory=lambda: list(ALL_DAYS),
        description="Days the window starts on.",
    )
    start: clock_time = Field(description="Local start time, e.g. 22:00.")
    end: clock_time = Field(description="Local end time, e.g. 06:00 (the next day if earlier).")


class CrowdConfig(StrictModel):
    """`crowd` alarm: at least `min_people` in the zone for `for_s` seconds."""

    min_people: int = Field(ge=1, le=500, description="People in the zone that make a crowd.")
    for_s: float = Field(default=30.0, ge=0, le=3600, description="Seconds the count must last.")
    clear_below: int | None = Field(
        default=None,
        ge=0,
        description="The alarm clears when fewer than this stay in the zone for `clear_after_s` "
        "(hysteresis); default: `min_people`.",
    )
    clear_after_s: float = Field(default=10.0, ge=0, le=3600, description="See clear_below.")

    @model_validator(mode="after")
    def _hysteresis(self) -> CrowdConfig:
        if self.clear_below is not None and not 1 <= self.clear_below <= self.min_people:
            raise ValueError("clear_below must be between 1 and min_people")
        return self


class DwellConfig(StrictModel):
    """Loitering: one person staying in the zone longer than `max_s`."""

    max_s: float = Field(ge=1, le=86400, description="Seconds one person may stay.")
    clear_after_s: float = Field(default=5.0, ge=0, le=3600, description="Quiet time to clear.")


class ZoneConfig(StrictModel):
    """A zone of the image: people are counted in it (feet inside the polygon)."""

    name: Name = Field(description="Zone name, unique within the camera.")
    polygon: PolygonPx
    location: Name | None = Field(
        default=None,
        description="Location (under `locations`) its alarms are raised at; default: the "
        "camera's.",
    )
    crowd: CrowdConfig | None = Field(default=None, description="Crowd gathering alarm.")
    dwell: DwellConfig | None = Field(default=None, description="Loitering alarm.")
    motion_alarm: ScheduleConfig | None = Field(
        default=None,
        description="Motion in the zone is an `intrusion` alarm during this window (otherwise "
        "motion is only an event in the ledger).",
    )
    motion_kind: AlarmKind = Field(
        default=AlarmKind.INTRUSION, description="Kind of the motion alarm."
    )


class ClipConfig(StrictModel):
    """Evidence clips kept with each alarm from this camera's linked locations."""

    enabled: bool = Field(default=True, description="Keep clips.")
    pre_s: float = Field(default=30.0, ge=0, le=300, description="Seconds before the alarm.")
    post_s: float = Field(default=10.0, ge=0, le=300, description="Seconds after the alarm.")
    stream_url: str | None = Field(
        default=None,
        description="Record this stream (e.g. the camera's main stream) instead of the analysed "
        "one; same credentials as the camera.",
    )


class AnalyticsConfig(StrictModel):
    """Video analytics of one camera, run in its capture process."""

    enabled: bool = Field(default=True, description="Set false to capture only.")
    frame_size: tuple[int, int] = Field(
        default=(640, 360),
        description="[width, height] of the image the zones and masks were drawn on.",
    )
    motion: MotionConfig = Field(default_factory=MotionConfig, description="Motion detection.")
    detection: DetectionConfig = Field(
        default_factory=DetectionConfig, description="Person detection."
    )
    tamper: TamperConfig = Field(default_factory=TamperConfig, description="View tampering.")
    zones: list[ZoneConfig] = Field(default_factory=list, description="Counting zones.")
    motion_events: Literal["zones", "all", "none"] = Field(
        default="zones",
        description="Which motion goes to the ledger as `camera.motion` events (start and end): "
        "in zones, anywhere, or none.",
    )

    @field_validator("frame_size")
    @classmethod
    def _size(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not (16 <= value[0] <= 8192 and 16 <= value[1] <= 8192):
            raise ValueError("frame_size: width and height between 16 and 8192")
        return value

    @model_validator(mode="after")
    def _zones(self) -> AnalyticsConfig:
        names = [zone.name for zone in self.zones]
        if len(names) != len(set(names)):
            raise ValueError("zone names must be unique within a camera")
        width, height = self.frame_size
        for polygon in [z.polygon for z in self.zones] + list(self.motion.masks):
            for x, y in polygon:
                if not (0 <= x <= width and 0 <= y <= height):
                    raise ValueError(
                        f"point [{x}, {y}] is outside the {width}x{height} frame_size"
                    )
        return self

    def normalised(self, polygon: list[Point]) -> tuple[Point, ...]:
        width, height = self.frame_size
        return tuple((x / width, y / height) for x, y in polygon)
