"""Exercise onvif-zeep-async against the fake device; print what comes back."""
from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time

t0 = time.monotonic()
from onvif import ONVIFCamera  # noqa: E402
from onvif.exceptions import ONVIFError  # noqa: E402
import zeep.exceptions  # noqa: E402

print(f"import onvif: {time.monotonic()-t0:.2f}s")


async def main(port: int, password: str, encrypt: bool, adjust_time: bool) -> None:
    cam = ONVIFCamera("127.0.0.1", port, "admin", password, encrypt=encrypt,
                      no_cache=True, adjust_time=adjust_time)
    try:
        t = time.monotonic()
        await cam.update_xaddrs()
        print(f"update_xaddrs {time.monotonic()-t:.2f}s xaddrs={cam.xaddrs}")
        dm = await cam.create_devicemgmt_service()
        sdt = await dm.GetSystemDateAndTime()
        print("GetSystemDateAndTime", sdt.DateTimeType, sdt.UTCDateTime.Date.Year, sdt.UTCDateTime.Time.Hour)
        info = await dm.GetDeviceInformation()
        print("GetDeviceInformation", info.Manufacturer, info.Model, info.FirmwareVersion, info.SerialNumber)
        media = await cam.create_media_service()
        profiles = await media.GetProfiles()
        tok = profiles[0].token
        print("GetProfiles", [(p.token, p.Name, p.VideoEncoderConfiguration.Encoding) for p in profiles])
        req = media.create_type("GetStreamUri")
        req.ProfileToken = tok
        req.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
        uri = await media.GetStreamUri(req)
        print("GetStreamUri", uri.Uri)
        print("get_snapshot_uri", await cam.get_snapshot_uri(tok))
        snap = await cam.get_snapshot(tok)
        print("get_snapshot bytes", None if snap is None else len(snap))
        # events: manual calls
        ev = await cam.create_events_service()
        sub = await ev.CreatePullPointSubscription({"InitialTerminationTime": "PT60S"})
        print("CreatePullPointSubscription", sub.SubscriptionReference.Address._value_1, sub.TerminationTime)
        # The library's manager does the same plus Renew scheduling:
        mgr = await cam.create_pullpoint_manager(dt.timedelta(seconds=60), lambda: print("LOST"))
        pp = mgr.get_service()
        msgs = await pp.PullMessages({"Timeout": dt.timedelta(seconds=2), "MessageLimit": 10})
        for m in msgs.NotificationMessage:
            print("PullMessages topic", m.Topic._value_1, "data", m.Message._value_1.Data.SimpleItem[0].Value)
        sm = await cam.create_subscription_service("PullPointSubscription")
        r = await sm.Renew({"TerminationTime": "PT60S"})
        print("Renew", r.TerminationTime)
        ptz = await cam.create_ptz_service()
        await ptz.GotoPreset({"ProfileToken": tok, "PresetToken": "1"})
        print("GotoPreset ok")
        await mgr.shutdown()
    except (ONVIFError, zeep.exceptions.Fault) as e:
        print("ERROR", type(e).__name__, e)
    finally:
        await cam.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3] == "digest", sys.argv[4] == "adjust"))
