"""Minimal fake ONVIF device on loopback: logs every SOAP request, answers canned responses.

It checks WS-Security UsernameToken (PasswordDigest or PasswordText) when USER/PASSWORD are set.
Run: python fake_onvif.py PORT RTSP_URL LOGFILE
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lxml import etree

USER, PASSWORD = "admin", "secret"
NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}
ENV_OPEN = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" '
    'xmlns:trt="http://www.onvif.org/ver10/media/wsdl" '
    'xmlns:tev="http://www.onvif.org/ver10/events/wsdl" '
    'xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl" '
    'xmlns:tt="http://www.onvif.org/ver10/schema" '
    'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" '
    'xmlns:wsa="http://www.w3.org/2005/08/addressing" '
    'xmlns:tns1="http://www.onvif.org/ver10/topics" '
    'xmlns:ter="http://www.onvif.org/ver10/error">'
)


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class State:
    base = ""
    rtsp = ""
    log = None  # type: ignore[assignment]
    lock = threading.Lock()
    pulls = 0


def check_auth(root: etree._Element) -> str:
    tok = root.find(".//wsse:UsernameToken", NS)
    if tok is None:
        return "none"
    user = tok.findtext("wsse:Username", namespaces=NS)
    pw_el = tok.find("wsse:Password", NS)
    nonce = tok.findtext("wsse:Nonce", namespaces=NS) or ""
    created = tok.findtext("wsu:Created", namespaces=NS) or ""
    ptype = (pw_el.get("Type") or "").rsplit("#", 1)[-1]
    if ptype == "PasswordDigest":
        want = base64.b64encode(
            hashlib.sha1(base64.b64decode(nonce) + created.encode() + PASSWORD.encode()).digest()
        ).decode()
    else:
        want = PASSWORD
    return f"{ptype}:{'ok' if (user == USER and pw_el.text == want) else 'BAD'}"


def body_for(op: str) -> str:
    now = dt.datetime.now(dt.timezone.utc)
    later = now + dt.timedelta(seconds=60)
    b = State.base
    if op == "GetSystemDateAndTime":
        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
            "<tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone><tt:UTCDateTime>"
            f"<tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}</tt:Minute><tt:Second>{now.second}</tt:Second></tt:Time>"
            f"<tt:Date><tt:Year>{now.year}</tt:Year><tt:Month>{now.month}</tt:Month><tt:Day>{now.day}</tt:Day></tt:Date>"
            "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        )
    if op == "GetServices":
        svcs = [
            ("http://www.onvif.org/ver10/device/wsdl", "/onvif/device_service"),
            ("http://www.onvif.org/ver10/media/wsdl", "/onvif/media_service"),
            ("http://www.onvif.org/ver10/events/wsdl", "/onvif/event_service"),
            ("http://www.onvif.org/ver20/ptz/wsdl", "/onvif/ptz_service"),
        ]
        return "<tds:GetServicesResponse>" + "".join(
            f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{b}{p}</tds:XAddr>"
            "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>"
            for ns, p in svcs
        ) + "</tds:GetServicesResponse>"
    if op == "GetDeviceInformation":
        return (
            "<tds:GetDeviceInformationResponse><tds:Manufacturer>FakeCam</tds:Manufacturer>"
            "<tds:Model>FC-1</tds:Model><tds:FirmwareVersion>1.0.0</tds:FirmwareVersion>"
            "<tds:SerialNumber>SN0001</tds:SerialNumber><tds:HardwareId>HW1</tds:HardwareId>"
            "</tds:GetDeviceInformationResponse>"
        )
    if op == "GetProfiles":
        return (
            '<trt:GetProfilesResponse><trt:Profiles token="Profile_1" fixed="true"><tt:Name>main</tt:Name>'
            '<tt:VideoSourceConfiguration token="VSC_1"><tt:Name>vsc</tt:Name><tt:UseCount>1</tt:UseCount>'
            '<tt:SourceToken>VS_1</tt:SourceToken><tt:Bounds x="0" y="0" width="768" height="432"/></tt:VideoSourceConfiguration>'
            '<tt:VideoEncoderConfiguration token="VEC_1"><tt:Name>vec</tt:Name><tt:UseCount>1</tt:UseCount>'
            "<tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>768</tt:Width><tt:Height>432</tt:Height></tt:Resolution>"
            "<tt:Quality>5</tt:Quality><tt:RateControl><tt:FrameRateLimit>10</tt:FrameRateLimit>"
            "<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>2048</tt:BitrateLimit></tt:RateControl>"
            "<tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration>"
            '<tt:PTZConfiguration token="PTZ_1"><tt:Name>ptz</tt:Name><tt:UseCount>1</tt:UseCount>'
            "<tt:NodeToken>PTZNODE_1</tt:NodeToken></tt:PTZConfiguration>"
            "</trt:Profiles></trt:GetProfilesResponse>"
        )
    if op == "GetStreamUri":
        return (
            f"<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>{State.rtsp}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
            "<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>"
        )
    if op == "GetSnapshotUri":
        return (
            f"<trt:GetSnapshotUriResponse><trt:MediaUri><tt:Uri>{b}/snapshot.jpg</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
            "<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetSnapshotUriResponse>"
        )
    if op == "CreatePullPointSubscription":
        return (
            "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>"
            f"<wsa:Address>{b}/onvif/subscription?id=1</wsa:Address></tev:SubscriptionReference>"
            f"<wsnt:CurrentTime>{iso(now)}</wsnt:CurrentTime><wsnt:TerminationTime>{iso(later)}</wsnt:TerminationTime>"
            "</tev:CreatePullPointSubscriptionResponse>"
        )
    if op == "PullMessages":
        State.pulls += 1
        state = "true" if State.pulls % 2 else "false"
        return (
            f"<tev:PullMessagesResponse><tev:CurrentTime>{iso(now)}</tev:CurrentTime>"
            f"<tev:TerminationTime>{iso(later)}</tev:TerminationTime>"
            "<wsnt:NotificationMessage>"
            '<wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">'
            "tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic><wsnt:Message>"
            f'<tt:Message UtcTime="{iso(now)}" PropertyOperation="Changed">'
            '<tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VSC_1"/></tt:Source>'
            f'<tt:Data><tt:SimpleItem Name="IsMotion" Value="{state}"/></tt:Data>'
            "</tt:Message></wsnt:Message></wsnt:NotificationMessage>"
            "</tev:PullMessagesResponse>"
        )
    if op == "Renew":
        return (
            f"<wsnt:RenewResponse><wsnt:TerminationTime>{iso(later)}</wsnt:TerminationTime>"
            f"<wsnt:CurrentTime>{iso(now)}</wsnt:CurrentTime></wsnt:RenewResponse>"
        )
    if op == "Unsubscribe":
        return "<wsnt:UnsubscribeResponse/>"
    if op == "SetSynchronizationPoint":
        return "<tev:SetSynchronizationPointResponse/>"
    if op == "GotoPreset":
        return "<tptz:GotoPresetResponse/>"
    if op == "GetPresets":
        return ('<tptz:GetPresetsResponse><tptz:Preset token="1"><tt:Name>door</tt:Name></tptz:Preset>'
                "</tptz:GetPresetsResponse>")
    raise KeyError(op)


FAULT_NOT_AUTH = (
    "<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>ter:NotAuthorized</s:Value>"
    "</s:Subcode></s:Code><s:Reason><s:Text xml:lang=\"en\">Sender not authorized</s:Text></s:Reason></s:Fault>"
)
FAULT_NO_OP = (
    "<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>ter:ActionNotSupported</s:Value>"
    "</s:Subcode></s:Code><s:Reason><s:Text xml:lang=\"en\">not supported</s:Text></s:Reason></s:Fault>"
)
# ops a real camera answers without auth (ONVIF core spec, "PRE_AUTH" class)
PRE_AUTH = {"GetSystemDateAndTime"}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        with State.lock:
            State.log.write(json.dumps({"method": "GET", "path": self.path,
                                        "authorization": self.headers.get("Authorization")}) + "\n")
            State.log.flush()
        a = self.headers.get("Authorization") or ""
        if not a.startswith(("Digest ", "Basic ")):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Digest realm="fakecam", nonce="abc123", qop="auth", algorithm=MD5')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"\xff\xd8\xff\xd9")

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        root = etree.fromstring(raw)
        body = root.find("s:Body", NS)
        first = body[0] if body is not None and len(body) else None
        op = etree.QName(first).localname if first is not None else "?"
        auth = check_auth(root)
        with State.lock:
            State.log.write(json.dumps({
                "method": "POST", "path": self.path, "op": op, "auth": auth,
                "content_type": self.headers.get("Content-Type"),
                "soapaction": self.headers.get("SOAPAction"),
                "body": raw.decode(),
            }) + "\n")
            State.log.flush()
        status = 200
        try:
            if op not in PRE_AUTH and not auth.endswith(":ok"):
                status, inner = 400, FAULT_NOT_AUTH  # many cameras answer 400 or 401 + this fault
            else:
                inner = body_for(op)
        except KeyError:
            status, inner = 400, FAULT_NO_OP
        out = (ENV_OPEN + "<s:Body>" + inner + "</s:Body></s:Envelope>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def main() -> None:
    port, rtsp, logf = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    State.base = f"http://127.0.0.1:{port}"
    State.rtsp = rtsp
    State.log = open(logf, "a")
    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    print(f"fake onvif on {State.base}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
