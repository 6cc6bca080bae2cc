"""The report's words in Chinese (the default) and English; alarm kinds and states come from
the consoles' table (edgeguard/web/i18n.py), so a kind is called the same everywhere."""

from __future__ import annotations

from edgeguard.web.config import Language
from edgeguard.web.i18n import text as console_text

_TEXT: dict[str, tuple[str, str]] = {  # key: Chinese, English
    "title": ("医院安全防范月报", "Monthly security report"),
    "month": ("{year}年{month}月", "{year}-{month:02d}"),
    "made": ("生成时间 {at}（{zone}）", "Made {at} ({zone})"),
    "page.summary": ("本月概况", "The month at a glance"),
    "page.alarms": ("报警分布", "Alarms: what and where"),
    "page.response": ("报警响应时间", "Response times"),
    "page.availability": ("设备可用率与重点部位视频覆盖", "Availability and key-area coverage"),
    "page.evidence": ("证据留存与巡更、演练、案件", "Evidence, patrols, drills and cases"),
    "fig.alarms": ("报警（不含测试）", "Alarms (tests excluded)"),
    "fig.security": ("其中求助/入侵类", "of which panic, duress, intrusion, crowd"),
    "fig.ack_p50": ("公安确认用时中位数", "Police acknowledged, median"),
    "fig.ack_p90": ("公安确认用时 P90", "Police acknowledged, p90"),
    "fig.unanswered": ("未获公安确认", "Not acknowledged by the police"),
    "fig.coverage": ("重点部位视频覆盖（最低）", "Key-area video coverage (lowest)"),
    "fig.link": ("公安链路可用率", "Police link availability"),
    "fig.open": ("月末未复位报警", "Alarms not reset at month end"),
    "todo.title": ("需要处理的事项", "What needs doing"),
    "todo.none": ("无：本月各项指标正常", "Nothing: every figure is in order"),
    "todo.down": (
        "本机（报警主机）停机共 {duration}：期间状态未知，计为未覆盖",
        "The appliance itself was off for {duration}: that time is unknown, counted as uncovered",
    ),
    "todo.open": (
        "{n} 条报警至月末仍未复位：请核实并复位",
        "{n} alarm(s) still not reset: check and reset them",
    ),
    "todo.unanswered": (
        "{n} 条报警未获公安确认：请与 110 指挥中心核对",
        "{n} alarm(s) never acknowledged by the police: check with the 110 centre",
    ),
    "todo.coverage": (
        "重点部位 {area} 视频覆盖 {share}：检查摄像机",
        "Key area {area}: video coverage {share}; check its cameras",
    ),
    "todo.device": (
        "{device} 可用率 {share}：检查设备与网络",
        "{device}: available {share}; check the device and its network",
    ),
    "chart.by_kind": ("按报警类型", "By kind"),
    "chart.by_location": (
        "按报警位置（求助/入侵类）",
        "By location (panic, duress, intrusion, crowd)",
    ),
    "chart.heatmap": ("报警时段分布（星期 × 小时）", "When (weekday × hour of day)"),
    "chart.weekdays": ("一,二,三,四,五,六,日", "Mon,Tue,Wed,Thu,Fri,Sat,Sun"),
    "chart.hour": ("小时", "Hour"),
    "chart.count": ("次数", "Count"),
    "chart.seconds": ("按下报警后的秒数（对数坐标）", "Seconds after the press (log scale)"),
    "chart.availability": ("设备在线率", "Devices online"),
    "chart.coverage": ("重点部位视频覆盖率", "Key areas with a live camera"),
    "chart.share": ("占本月时间", "Share of the month"),
    "stage.delivered": ("送达公安服务器", "At the police broker"),
    "stage.received": ("公安平台接收", "Police platform stored"),
    "stage.acknowledged": ("公安确认", "Police acknowledged"),
    "stage.dispatched": ("公安出警", "Police dispatched"),
    "stage.reset": ("现场复位", "Reset on site"),
    "table.stage": ("环节", "Stage"),
    "table.count": ("条数", "Alarms"),
    "table.slowest": ("响应最慢的报警", "The slowest alarms"),
    "table.when": ("时间", "When"),
    "table.where": ("位置", "Where"),
    "table.kind": ("类型", "Kind"),
    "table.ack": ("公安确认", "Acknowledged"),
    "table.by": ("确认人", "By"),
    "table.never": ("未确认", "never"),
    "table.device": ("设备", "Device"),
    "table.outages": ("中断次数", "Outages"),
    "table.longest": ("最长中断", "Longest"),
    "table.online": ("在线率", "Online"),
    "table.area": ("重点部位", "Key area"),
    "table.cameras": ("摄像机", "Cameras"),
    "role.police_link": ("公安链路", "Police link"),
    "role.camera": ("摄像机", "Camera"),
    "role.input": ("报警输入", "Alarm input"),
    "role.other": ("其他", "Other"),
    "evidence.kept": (
        "本月报警留存证据：抓拍 {snapshots} 张、录像 {clips} 段，共 {size}",
        "Evidence kept for the month's alarms: {snapshots} snapshot(s), {clips} clip(s), {size}",
    ),
    "evidence.pruned": (
        "按留存策略删除的证据目录：{n} 个",
        "Evidence folders deleted by the retention policy: {n}",
    ),
    "evidence.excluded": (
        "测试/演练报警 {n} 条，未计入任何统计",
        "{n} test or drill alarm(s), kept out of every figure",
    ),
    "evidence.rows": (
        "本报告依据日志记录 {n} 条（哈希链日志，可用 edgeguard verify-log 校验）",
        "Computed from {n} ledger rows (hash-chained; check with edgeguard verify-log)",
    ),
    "patrols.none": (
        "巡更、演练与案件登记：本版本尚未记录，本节暂缺",
        "Patrols, drills and cases: not recorded by this version yet",
    ),
    "unit.s": ("{v:.1f} 秒", "{v:.1f} s"),
    "unit.min": ("{v:.1f} 分钟", "{v:.1f} min"),
    "unit.h": ("{v:.1f} 小时", "{v:.1f} h"),
    "none": ("—", "—"),
}

TEXT: dict[Language, dict[str, str]] = {
    "zh": {key: pair[0] for key, pair in _TEXT.items()},
    "en": {key: pair[1] for key, pair in _TEXT.items()},
}


def say(language: Language, key: str, **values: object) -> str:
    """The report's own words, or the consoles' (kinds, states)."""
    words = TEXT[language].get(key)
    if words is None:
        words = console_text(language, key)
    return words.format(**values) if values else words


def duration(language: Language, seconds: float | None) -> str:
    if seconds is None:
        return say(language, "none")
    if seconds < 120:
        return say(language, "unit.s", v=seconds)
    if seconds < 7200:
        return say(language, "unit.min", v=seconds / 60)
    return say(language, "unit.h", v=seconds / 3600)


def share(value: float) -> str:
    """99.98 %: two decimals, since 0.1 % of a month is 43 minutes."""
    return f"{value * 100:.2f} %"


def size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.0f} kB"
