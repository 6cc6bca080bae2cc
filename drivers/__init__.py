"""Input drivers for edgeguard (installed as the ``edgeguard_drivers`` package).

A driver is one module: a pydantic config model selected by its ``type`` and a class derived
from :class:`edgeguard.driver_api.InputDriver`. Drivers run in their own threads or callbacks
and reach the alarm path only through the :class:`edgeguard.driver_api.SignalSink` they are given.
"""
