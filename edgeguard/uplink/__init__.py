"""The uplink: how recorded messages reach the police (docs/transmission-paths.md).

``outbox`` keeps the undelivered rows and hands them to one ``lane`` per broker; ``failover``
decides when a row goes on to the secondary broker, then to ``sms``; ``site_link`` is the
paho client of one broker, on the ``paho_link`` base the police receiver's link shares;
``link_events`` is each link's events handler; ``transmission`` holds the extra paths together
and ``path_supervisor`` reports each path's state as a device.

Nothing is imported here: the police receiver imports ``paho_link`` alone.
"""
