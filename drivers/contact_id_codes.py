"""The Contact ID event codes (SIA DC-05 / Ademco) and what each raises: alarm, supervision or
log only, the alarm kind and priority, and whether the CCC field is a zone or a user. Pure
data (docs/drivers/contact-id.md)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from edgeguard.alarm_model import AlarmKind

# -- event codes ----------------------------------------------------------------------------------


class Handling(StrEnum):
    ALARM = "alarm"  # raise (Q=1/6) or restore (Q=3) an alarm of the code's kind
    SUPERVISION = "supervision"  # periodic test: the panel is alive; raises nothing
    LOG = "log"  # opening/closing, bypass, access, tests: logged, raises nothing


class Ccc(StrEnum):
    """What the CCC field of an event code holds."""

    ZONE = "zone"
    USER = "user"


@dataclass(frozen=True, slots=True)
class CodeInfo:
    code: str
    description: str
    handling: Handling
    kind: AlarmKind | None  # None unless handling is ALARM
    priority: int | None
    category: str
    ccc: Ccc


_A, _S, _L = Handling.ALARM, Handling.SUPERVISION, Handling.LOG
_Z, _U = Ccc.ZONE, Ccc.USER
_PANIC, _DURESS = AlarmKind.PANIC, AlarmKind.DURESS
_INTR, _FAULT = AlarmKind.INTRUSION, AlarmKind.DEVICE_FAULT

# The mapping, one row per code: (code, description, handling, kind, priority, category, ccc).
# Names follow SIA DC-05 (Ademco Contact ID). There is no fire, gas or medical kind in the
# model: those life-safety alarms are raised as `panic` P1 with their category in the detail.
_ROWS: tuple[tuple[str, str, Handling, AlarmKind | None, int | None, str, Ccc], ...] = (
    # 1xx medical, fire, panic
    ("100", "Medical", _A, _PANIC, 1, "medical", _Z),
    ("101", "Personal emergency", _A, _PANIC, 1, "personal_emergency", _Z),
    ("102", "Fail to report in", _A, _PANIC, 1, "medical", _Z),
    ("110", "Fire", _A, _PANIC, 1, "fire", _Z),
    ("111", "Smoke", _A, _PANIC, 1, "fire", _Z),
    ("112", "Combustion", _A, _PANIC, 1, "fire", _Z),
    ("113", "Water flow", _A, _PANIC, 1, "fire", _Z),
    ("114", "Heat", _A, _PANIC, 1, "fire", _Z),
    ("115", "Pull station", _A, _PANIC, 1, "fire", _Z),
    ("116", "Duct", _A, _PANIC, 1, "fire", _Z),
    ("117", "Flame", _A, _PANIC, 1, "fire", _Z),
    ("118", "Near alarm (fire)", _A, _PANIC, 2, "fire", _Z),
    ("120", "Panic", _A, _PANIC, 1, "panic", _Z),
    ("121", "Duress", _A, _DURESS, 1, "duress", _U),
    ("122", "Silent panic (24 h)", _A, _PANIC, 1, "panic", _Z),
    ("123", "Audible panic (24 h)", _A, _PANIC, 1, "panic", _Z),
    ("124", "Duress - access granted", _A, _DURESS, 1, "duress", _Z),
    ("125", "Duress - egress granted", _A, _DURESS, 1, "duress", _Z),
    # 13x burglary
    ("130", "Burglary", _A, _INTR, 2, "burglary", _Z),
    ("131", "Perimeter burglary", _A, _INTR, 2, "burglary", _Z),
    ("132", "Interior burglary", _A, _INTR, 2, "burglary", _Z),
    ("133", "24 hour burglary (safe)", _A, _INTR, 2, "burglary", _Z),
    ("134", "Entry/exit burglary", _A, _INTR, 2, "burglary", _Z),
    ("135", "Day/night burglary", _A, _INTR, 2, "burglary", _Z),
    ("136", "Outdoor burglary", _A, _INTR, 2, "burglary", _Z),
    ("137", "Tamper", _A, _FAULT, 3, "tamper", _Z),
    ("138", "Near alarm (burglary)", _A, _INTR, 2, "burglary", _Z),
    ("139", "Intrusion verifier", _A, _INTR, 2, "burglary", _Z),
    # 14x general
    ("140", "General alarm", _A, _INTR, 2, "general_alarm", _Z),
    ("141", "Polling loop open", _A, _FAULT, 3, "trouble", _Z),
    ("142", "Polling loop short", _A, _FAULT, 3, "trouble", _Z),
    ("143", "Expansion module failure", _A, _FAULT, 3, "trouble", _Z),
    ("144", "Sensor tamper", _A, _FAULT, 3, "tamper", _Z),
    ("145", "Expansion module tamper", _A, _FAULT, 3, "tamper", _Z),
    ("146", "Silent burglary", _A, _INTR, 2, "burglary", _Z),
    ("147", "Sensor supervision failure", _A, _FAULT, 3, "supervision", _Z),
    # 15x/16x 24 hour non-burglary
    ("150", "24 hour non-burglary", _A, _FAULT, 3, "environmental", _Z),
    ("151", "Gas detected", _A, _PANIC, 1, "gas", _Z),
    ("152", "Refrigeration", _A, _FAULT, 3, "environmental", _Z),
    ("153", "Loss of heat", _A, _FAULT, 3, "environmental", _Z),
    ("154", "Water leakage", _A, _FAULT, 3, "environmental", _Z),
    ("155", "Foil break", _A, _INTR, 2, "burglary", _Z),
    ("156", "Day trouble", _A, _FAULT, 3, "trouble", _Z),
    ("157", "Low bottled gas level", _A, _FAULT, 3, "environmental", _Z),
    ("158", "High temperature", _A, _FAULT, 3, "environmental", _Z),
    ("159", "Low temperature", _A, _FAULT, 3, "environmental", _Z),
    ("161", "Loss of air flow", _A, _FAULT, 3, "environmental", _Z),
    ("162", "Carbon monoxide detected", _A, _PANIC, 1, "carbon_monoxide", _Z),
    ("163", "Tank level", _A, _FAULT, 3, "environmental", _Z),
    # 2xx supervisory (fire protection)
    ("200", "Fire supervisory", _A, _FAULT, 3, "supervisory", _Z),
    ("201", "Low water pressure", _A, _FAULT, 3, "supervisory", _Z),
    ("202", "Low CO2", _A, _FAULT, 3, "supervisory", _Z),
    ("203", "Gate valve sensor", _A, _FAULT, 3, "supervisory", _Z),
    ("204", "Low water level", _A, _FAULT, 3, "supervisory", _Z),
    ("205", "Pump activated", _A, _FAULT, 3, "supervisory", _Z),
    ("206", "Pump failure", _A, _FAULT, 3, "supervisory", _Z),
    # 3xx troubles
    ("300", "System trouble", _A, _FAULT, 3, "trouble", _Z),
    ("301", "AC loss", _A, _FAULT, 3, "power", _Z),
    ("302", "Low system battery", _A, _FAULT, 3, "power", _Z),
    ("303", "RAM checksum bad", _A, _FAULT, 3, "trouble", _Z),
    ("304", "ROM checksum bad", _A, _FAULT, 3, "trouble", _Z),
    ("305", "System reset", _L, None, None, "system", _Z),
    ("306", "Panel programming changed", _L, None, None, "system", _Z),
    ("307", "Self-test failure", _A, _FAULT, 3, "trouble", _Z),
    ("308", "System shutdown", _A, _FAULT, 3, "trouble", _Z),
    ("309", "Battery test failure", _A, _FAULT, 3, "power", _Z),
    ("310", "Ground fault", _A, _FAULT, 3, "trouble", _Z),
    ("311", "Battery missing/dead", _A, _FAULT, 3, "power", _Z),
    ("312", "Power supply overcurrent", _A, _FAULT, 3, "power", _Z),
    ("313", "Engineer reset", _L, None, None, "system", _U),
    ("320", "Sounder/relay", _A, _FAULT, 3, "trouble", _Z),
    ("321", "Bell 1", _A, _FAULT, 3, "trouble", _Z),
    ("322", "Bell 2", _A, _FAULT, 3, "trouble", _Z),
    ("323", "Alarm relay", _A, _FAULT, 3, "trouble", _Z),
    ("324", "Trouble relay", _A, _FAULT, 3, "trouble", _Z),
    ("325", "Reversing relay", _A, _FAULT, 3, "trouble", _Z),
    ("326", "Notification appliance circuit 3", _A, _FAULT, 3, "trouble", _Z),
    ("327", "Notification appliance circuit 4", _A, _FAULT, 3, "trouble", _Z),
    ("330", "System peripheral trouble", _A, _FAULT, 3, "trouble", _Z),
    ("331", "Polling loop open", _A, _FAULT, 3, "trouble", _Z),
    ("332", "Polling loop short", _A, _FAULT, 3, "trouble", _Z),
    ("333", "Expansion module failure", _A, _FAULT, 3, "trouble", _Z),
    ("334", "Repeater failure", _A, _FAULT, 3, "trouble", _Z),
    ("335", "Local printer out of paper", _A, _FAULT, 3, "trouble", _Z),
    ("336", "Local printer failure", _A, _FAULT, 3, "trouble", _Z),
    ("337", "Expansion module DC loss", _A, _FAULT, 3, "power", _Z),
    ("338", "Expansion module low battery", _A, _FAULT, 3, "power", _Z),
    ("339", "Expansion module reset", _A, _FAULT, 3, "trouble", _Z),
    ("341", "Expansion module tamper", _A, _FAULT, 3, "tamper", _Z),
    ("342", "Expansion module AC loss", _A, _FAULT, 3, "power", _Z),
    ("343", "Expansion module self-test failure", _A, _FAULT, 3, "trouble", _Z),
    ("344", "RF receiver jam detected", _A, _FAULT, 3, "trouble", _Z),
    ("350", "Communication trouble", _A, _FAULT, 3, "communication", _Z),
    ("351", "Telco 1 fault", _A, _FAULT, 3, "communication", _Z),
    ("352", "Telco 2 fault", _A, _FAULT, 3, "communication", _Z),
    ("353", "Long range radio transmitter fault", _A, _FAULT, 3, "communication", _Z),
    ("354", "Failure to communicate event", _A, _FAULT, 3, "communication", _Z),
    ("355", "Loss of radio supervision", _A, _FAULT, 3, "communication", _Z),
    ("356", "Loss of central polling", _A, _FAULT, 3, "communication", _Z),
    ("357", "Long range radio VSWR problem", _A, _FAULT, 3, "communication", _Z),
    ("370", "Protection loop", _A, _FAULT, 3, "trouble", _Z),
    ("371", "Protection loop open", _A, _FAULT, 3, "trouble", _Z),
    ("372", "Protection loop short", _A, _FAULT, 3, "trouble", _Z),
    ("373", "Fire trouble", _A, _FAULT, 3, "fire_trouble", _Z),
    ("374", "Exit error alarm (zone)", _A, _FAULT, 3, "trouble", _Z),
    ("375", "Panic zone trouble", _A, _FAULT, 2, "panic_trouble", _Z),
    ("376", "Hold-up zone trouble", _A, _FAULT, 2, "panic_trouble", _Z),
    ("377", "Swinger trouble", _A, _FAULT, 3, "trouble", _Z),
    ("378", "Cross-zone trouble", _A, _FAULT, 3, "trouble", _Z),
    ("380", "Sensor trouble", _A, _FAULT, 3, "trouble", _Z),
    ("381", "Loss of supervision - RF", _A, _FAULT, 3, "supervision", _Z),
    ("382", "Loss of supervision - RPM", _A, _FAULT, 3, "supervision", _Z),
    ("383", "Sensor tamper", _A, _FAULT, 3, "tamper", _Z),
    ("384", "RF low battery", _A, _FAULT, 3, "power", _Z),
    ("385", "Smoke detector high sensitivity", _A, _FAULT, 3, "fire_trouble", _Z),
    ("386", "Smoke detector low sensitivity", _A, _FAULT, 3, "fire_trouble", _Z),
    ("387", "Intrusion detector high sensitivity", _A, _FAULT, 3, "trouble", _Z),
    ("388", "Intrusion detector low sensitivity", _A, _FAULT, 3, "trouble", _Z),
    ("389", "Sensor self-test failure", _A, _FAULT, 3, "trouble", _Z),
    ("391", "Sensor watch trouble", _A, _FAULT, 3, "trouble", _Z),
    ("392", "Drift compensation error", _A, _FAULT, 3, "trouble", _Z),
    ("393", "Maintenance alert", _A, _FAULT, 3, "trouble", _Z),
    # 4xx open/close and access: logged only (CCC is the user, unless noted)
    ("400", "Open/close", _L, None, None, "open_close", _U),
    ("401", "Open/close by user", _L, None, None, "open_close", _U),
    ("402", "Group open/close", _L, None, None, "open_close", _U),
    ("403", "Automatic open/close", _L, None, None, "open_close", _U),
    ("404", "Late to open/close", _L, None, None, "open_close", _U),
    ("405", "Deferred open/close", _L, None, None, "open_close", _U),
    ("406", "Cancel", _L, None, None, "open_close", _U),
    ("407", "Remote arm/disarm", _L, None, None, "open_close", _U),
    ("408", "Quick arm", _L, None, None, "open_close", _U),
    ("409", "Keyswitch open/close", _L, None, None, "open_close", _U),
    ("411", "Callback request made", _L, None, None, "remote_access", _U),
    ("412", "Successful download/access", _L, None, None, "remote_access", _U),
    ("413", "Unsuccessful access", _L, None, None, "remote_access", _U),
    ("414", "System shutdown command received", _L, None, None, "remote_access", _U),
    ("415", "Dialer shutdown command received", _L, None, None, "remote_access", _U),
    ("416", "Successful upload", _L, None, None, "remote_access", _Z),
    ("421", "Access denied", _L, None, None, "access", _U),
    ("422", "Access report by user", _L, None, None, "access", _U),
    ("423", "Forced access", _A, _INTR, 2, "forced_access", _Z),
    ("424", "Egress denied", _L, None, None, "access", _U),
    ("425", "Egress granted", _L, None, None, "access", _U),
    ("426", "Access door propped open", _L, None, None, "access", _Z),
    ("427", "Access point door status monitor trouble", _L, None, None, "access", _Z),
    ("428", "Access point request to exit trouble", _L, None, None, "access", _Z),
    ("429", "Access program mode entry", _L, None, None, "access", _U),
    ("430", "Access program mode exit", _L, None, None, "access", _U),
    ("431", "Access threat level change", _L, None, None, "access", _U),
    ("432", "Access relay/trigger failure", _L, None, None, "access", _Z),
    ("433", "Access request-to-exit shunt", _L, None, None, "access", _Z),
    ("434", "Access door status monitor shunt", _L, None, None, "access", _Z),
    ("441", "Armed stay", _L, None, None, "open_close", _U),
    ("442", "Keyswitch armed stay", _L, None, None, "open_close", _U),
    ("450", "Exception open/close", _L, None, None, "open_close", _U),
    ("451", "Early open/close", _L, None, None, "open_close", _U),
    ("452", "Late open/close", _L, None, None, "open_close", _U),
    ("453", "Failed to open", _L, None, None, "open_close", _U),
    ("454", "Failed to close", _L, None, None, "open_close", _U),
    ("455", "Auto-arm failed", _L, None, None, "open_close", _U),
    ("456", "Partial arm", _L, None, None, "open_close", _U),
    ("457", "Exit error (user)", _L, None, None, "open_close", _U),
    ("458", "User on premises", _L, None, None, "open_close", _U),
    ("459", "Recent close", _L, None, None, "open_close", _U),
    ("461", "Wrong code entry", _L, None, None, "access", _Z),
    ("462", "Legal code entry", _L, None, None, "access", _U),
    ("463", "Re-arm after alarm", _L, None, None, "open_close", _U),
    ("464", "Auto-arm time extended", _L, None, None, "open_close", _U),
    ("465", "Panic alarm reset", _L, None, None, "open_close", _Z),
    ("466", "Service on/off premises", _L, None, None, "open_close", _U),
    # 5xx bypasses and disables: logged only
    ("501", "Access reader disable", _L, None, None, "disable", _Z),
    ("520", "Sounder/relay disable", _L, None, None, "disable", _Z),
    ("521", "Bell 1 disable", _L, None, None, "disable", _Z),
    ("522", "Bell 2 disable", _L, None, None, "disable", _Z),
    ("523", "Alarm relay disable", _L, None, None, "disable", _Z),
    ("524", "Trouble relay disable", _L, None, None, "disable", _Z),
    ("525", "Reversing relay disable", _L, None, None, "disable", _Z),
    ("526", "Notification appliance circuit 3 disable", _L, None, None, "disable", _Z),
    ("527", "Notification appliance circuit 4 disable", _L, None, None, "disable", _Z),
    ("531", "Module added", _L, None, None, "disable", _Z),
    ("532", "Module removed", _L, None, None, "disable", _Z),
    ("551", "Dialer disabled", _L, None, None, "disable", _Z),
    ("552", "Radio transmitter disabled", _L, None, None, "disable", _Z),
    ("553", "Remote upload/download disabled", _L, None, None, "disable", _Z),
    ("570", "Zone/sensor bypass", _L, None, None, "bypass", _Z),
    ("571", "Fire bypass", _L, None, None, "bypass", _Z),
    ("572", "24 hour zone bypass", _L, None, None, "bypass", _Z),
    ("573", "Burglary bypass", _L, None, None, "bypass", _U),
    ("574", "Group bypass", _L, None, None, "bypass", _Z),
    ("575", "Swinger bypass", _L, None, None, "bypass", _Z),
    ("576", "Access zone shunt", _L, None, None, "bypass", _Z),
    ("577", "Access point bypass", _L, None, None, "bypass", _Z),
    # 6xx tests and miscellaneous
    ("601", "Manual trigger test report", _L, None, None, "test", _Z),
    ("602", "Periodic test report", _S, None, None, "test", _Z),
    ("603", "Periodic RF transmission", _S, None, None, "test", _Z),
    ("604", "Fire test", _L, None, None, "test", _U),
    ("605", "Status report to follow", _L, None, None, "test", _Z),
    ("606", "Listen-in to follow", _L, None, None, "test", _Z),
    ("607", "Walk test mode", _L, None, None, "test", _U),
    ("608", "Periodic test - system trouble present", _S, None, None, "test", _Z),
    ("609", "Video transmitter active", _L, None, None, "test", _Z),
    ("611", "Point tested OK", _L, None, None, "test", _Z),
    ("612", "Point not tested", _L, None, None, "test", _Z),
    ("613", "Intrusion zone walk tested", _L, None, None, "test", _Z),
    ("614", "Fire zone walk tested", _L, None, None, "test", _Z),
    ("615", "Panic zone walk tested", _L, None, None, "test", _Z),
    ("616", "Service request", _L, None, None, "test", _Z),
    ("621", "Event log reset", _L, None, None, "event_log", _Z),
    ("622", "Event log 50% full", _L, None, None, "event_log", _Z),
    ("623", "Event log 90% full", _L, None, None, "event_log", _Z),
    ("624", "Event log overflow", _L, None, None, "event_log", _Z),
    ("625", "Time/date reset", _L, None, None, "system", _U),
    ("626", "Time/date inaccurate", _L, None, None, "system", _Z),
    ("627", "Program mode entry", _L, None, None, "system", _Z),
    ("628", "Program mode exit", _L, None, None, "system", _Z),
    ("629", "32 hour event log marker", _L, None, None, "event_log", _Z),
    ("630", "Schedule change", _L, None, None, "system", _Z),
    ("631", "Exception schedule change", _L, None, None, "system", _Z),
    ("632", "Access schedule change", _L, None, None, "system", _Z),
)

CODES: dict[str, CodeInfo] = {row[0]: CodeInfo(*row) for row in _ROWS}

# Codes outside the table, by the range the standard gives their first digit.
_RANGE_DEFAULTS: dict[str, tuple[str, Handling, AlarmKind | None, int | None, str, Ccc]] = {
    "1": ("Unknown alarm", _A, _INTR, 2, "unknown_alarm", _Z),
    "2": ("Unknown supervisory", _A, _FAULT, 3, "supervisory", _Z),
    "3": ("Unknown trouble", _A, _FAULT, 3, "trouble", _Z),
    "4": ("Unknown open/close or access", _L, None, None, "open_close", _U),
    "5": ("Unknown bypass or disable", _L, None, None, "bypass", _Z),
    "6": ("Unknown test or miscellaneous", _L, None, None, "test", _Z),
}
_UNDEFINED = ("Undefined event code", _L, None, None, "undefined", _Z)


def lookup(code: str) -> CodeInfo:
    """The table row of an event code, or the default of its range (0xx, 7xx-9xx and codes
    with B-F digits are outside the standard's ranges: logged only)."""
    info = CODES.get(code)
    if info is not None:
        return info
    default = _RANGE_DEFAULTS.get(code[:1], _UNDEFINED)
    return CodeInfo(code, *default)
