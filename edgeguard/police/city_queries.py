"""The city dashboard's reads (docs/city-platform.md): the summary of thousands of sites,
pages of sites (searched, those in alarm and lost first) and of open alarms (not yet
acknowledged first, P1 first), and the snapshots of many alarms at once. Every query goes
through an index of the police schema and reads only as far as the page asks, on SQLite and
PostgreSQL alike. Every call blocks: the dashboard runs it in a thread."""

from __future__ import annotations

from typing import Any

from edgeguard.police.db import Database, Tx
from edgeguard.police.queries import ALARM_COLUMNS, StoreQueries, alarm_row

# the city dashboard (docs/city-platform.md): open = not resolved by the police, spelt as an IN
# so that the index alarms_open (police_state, priority, raised_at) answers it
OPEN_STATES = ("new", "acknowledged", "dispatched")
_OPEN_IN = "police_state IN (?, ?, ?)"
SITE_STATES = ("lost", "offline", "unknown", "online")  # the list's order after sites in alarm
MAX_PER_PAGE = 200
_CHUNK = 500  # ids per IN (...): well below either engine's limit on parameters


def like_pattern(text: str) -> str:
    """A LIKE pattern for ``text`` anywhere (lower case; ``%``, ``_`` and ``\\`` literal)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _page_slices(groups: list[int], offset: int, limit: int) -> list[tuple[int, int, int]]:
    """Where rows [offset, offset + limit) of groups of these sizes, one after the other, lie:
    (group index, offset in the group, how many)."""
    slices: list[tuple[int, int, int]] = []
    start = 0
    for index, size in enumerate(groups):
        lo, hi = max(offset, start), min(offset + limit, start + size)
        if lo < hi:
            slices.append((index, lo - start, hi - lo))
        start += size
    return slices


class CityQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _rows(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        tx: Tx
        with self.db.read() as tx:
            return tx.execute(sql, params).rows

    def summary(self) -> dict[str, Any]:
        """Sites by state and in alarm (with an alarm the police have not resolved), open
        alarms by priority and how many nobody has acknowledged: three indexed GROUP BYs
        (sites_state, alarms_open), whatever the number of sites."""
        tx: Tx
        with self.db.read() as tx:
            by_state = tx.execute("SELECT state, COUNT(*) AS n FROM sites GROUP BY state").rows
            alarms = tx.execute(
                "SELECT police_state, priority, COUNT(*) AS n FROM alarms "  # noqa: S608
                f"WHERE {_OPEN_IN} GROUP BY police_state, priority",
                OPEN_STATES,
            ).rows
            in_alarm = tx.execute(
                f"SELECT COUNT(DISTINCT site) AS n FROM alarms WHERE {_OPEN_IN}",  # noqa: S608
                OPEN_STATES,
            ).scalar()
        states = {str(r["state"]): int(r["n"]) for r in by_state}
        by_priority: dict[str, int] = {}
        for r in alarms:
            key = str(r["priority"])
            by_priority[key] = by_priority.get(key, 0) + int(r["n"])
        return {
            "sites": {
                "total": sum(states.values()),
                **{state: states.get(state, 0) for state in SITE_STATES},
                "other": sum(n for state, n in states.items() if state not in SITE_STATES),
                "in_alarm": int(in_alarm or 0),
            },
            "alarms": {
                "open": sum(int(r["n"]) for r in alarms),
                "new": sum(int(r["n"]) for r in alarms if r["police_state"] == "new"),
                "by_priority": dict(sorted(by_priority.items())),
            },
        }

    def open_total(self) -> int:
        """How many alarms the police have not resolved (through the index alarms_open)."""
        rows = self._rows(f"SELECT COUNT(*) AS n FROM alarms WHERE {_OPEN_IN}", OPEN_STATES)  # noqa: S608
        return int(rows[0]["n"])

    def sites_page(
        self, q: str | None = None, state: str | None = None, page: int = 1, per_page: int = 50
    ) -> dict[str, Any]:
        """One page of the sites, those in alarm first, then lost, offline, unknown, online
        (others last), each by id; ``q``: a piece of the id or name (any case); ``state``: one
        state, or ``alarm`` for the sites in alarm. {"sites": rows with devices, in_alarm and
        police_open (their open alarms), "total", "page", "per_page"}.

        The sites in alarm come from the open alarms (index alarms_open); each state's share
        is one query (index sites_state, and alarms_site for "not in alarm") that reads only
        as far as the page, so a page costs the same in a city as in a town."""
        per_page = max(1, min(per_page, MAX_PER_PAGE))
        page = max(1, page)
        match, params = self._site_match(q)
        tx: Tx
        with self.db.read() as tx:
            alarmed = self._alarmed_sites(tx, match, params, state)
            groups: list[tuple[str, int]] = [("alarm", len(alarmed))]
            if state != "alarm":
                counts = self._site_counts(tx, match, params, state)
                for name in self._ordered_states(counts):
                    alarmed_here = sum(1 for row in alarmed if row["state"] == name)
                    groups.append((name, counts[name] - alarmed_here))
            rows: list[dict[str, Any]] = []
            offset = (page - 1) * per_page
            for index, skip, take in _page_slices([n for _, n in groups], offset, per_page):
                if index == 0:
                    rows.extend(alarmed[skip : skip + take])
                else:
                    where = (groups[index][0], match, params)
                    rows.extend(self._state_slice(tx, where, skip, take))
            self._decorate_sites(tx, rows, {row["id"] for row in alarmed})
        return {
            "sites": rows,
            "total": sum(n for _, n in groups),
            "page": page,
            "per_page": per_page,
        }

    @staticmethod
    def _site_match(q: str | None) -> tuple[str, list[Any]]:
        if not q:
            return "", []
        pattern = like_pattern(q)
        return (
            " AND (LOWER(id) LIKE ? ESCAPE '\\' OR LOWER(COALESCE(name, '')) LIKE ? ESCAPE '\\')",
            [pattern, pattern],
        )

    @staticmethod
    def _alarmed_sites(
        tx: Tx, match: str, params: list[Any], state: str | None
    ) -> list[dict[str, Any]]:
        """The sites in alarm (matching), ordered as the list orders its groups."""
        ids = [
            str(r["site"])
            for r in tx.execute(
                f"SELECT DISTINCT site FROM alarms WHERE {_OPEN_IN}",  # noqa: S608
                OPEN_STATES,
            ).rows
        ]
        only = " AND state = ?" if state not in (None, "alarm") else ""
        rows: list[dict[str, Any]] = []
        for at in range(0, len(ids), _CHUNK):
            chunk = ids[at : at + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            rows += tx.execute(
                f"SELECT * FROM sites WHERE id IN ({marks}){match}{only}",  # noqa: S608
                [*chunk, *params, *([state] if only else [])],
            ).rows
        rank = {name: index for index, name in enumerate(SITE_STATES)}
        rows.sort(key=lambda r: (rank.get(r["state"], len(rank)), str(r["state"]), r["id"]))
        return rows

    @staticmethod
    def _site_counts(tx: Tx, match: str, params: list[Any], state: str | None) -> dict[str, int]:
        only = " AND state = ?" if state is not None else ""
        return {
            str(r["state"]): int(r["n"])
            for r in tx.execute(
                f"SELECT state, COUNT(*) AS n FROM sites WHERE 1 = 1{match}{only} "  # noqa: S608
                "GROUP BY state",
                [*params, *([state] if only else [])],
            ).rows
        }

    @staticmethod
    def _ordered_states(counts: dict[str, int]) -> list[str]:
        known = [name for name in SITE_STATES if name in counts]
        return known + sorted(name for name in counts if name not in SITE_STATES)

    @staticmethod
    def _state_slice(
        tx: Tx, where: tuple[str, str, list[Any]], skip: int, take: int
    ) -> list[dict[str, Any]]:
        """Sites in a state (and matching) not in alarm, by id, rows [skip, skip + take)."""
        state, match, params = where
        return tx.execute(
            f"SELECT * FROM sites WHERE state = ?{match} AND NOT EXISTS "  # noqa: S608
            f"(SELECT 1 FROM alarms a WHERE a.site = sites.id AND a.{_OPEN_IN}) "
            "ORDER BY id LIMIT ? OFFSET ?",
            [state, *params, *OPEN_STATES, take, skip],
        ).rows

    @staticmethod
    def _decorate_sites(tx: Tx, rows: list[dict[str, Any]], alarmed: set[str]) -> None:
        """The page's sites get their devices, in_alarm and police_open (open alarms)."""
        ids = [row["id"] for row in rows]
        if not ids:
            return
        marks = ", ".join("?" for _ in ids)
        devices = tx.execute(
            "SELECT site, device, state, at, received_at FROM devices "  # noqa: S608
            f"WHERE site IN ({marks}) ORDER BY site, device",
            ids,
        ).rows
        open_by_site = {
            str(r["site"]): int(r["n"])
            for r in tx.execute(
                "SELECT site, COUNT(*) AS n FROM alarms "  # noqa: S608
                f"WHERE site IN ({marks}) AND {_OPEN_IN} GROUP BY site",
                [*ids, *OPEN_STATES],
            ).rows
        }
        StoreQueries._sites_with_devices(rows, devices)
        for row in rows:
            row["in_alarm"] = row["id"] in alarmed
            row["police_open"] = open_by_site.get(row["id"], 0)

    def site_alarm_counts(self, sites: list[str]) -> dict[str, int]:
        """Open alarms of each of these sites (index alarms_site); a site without is absent."""
        if not sites:
            return {}
        marks = ", ".join("?" for _ in sites)
        return {
            str(r["site"]): int(r["n"])
            for r in self._rows(
                "SELECT site, COUNT(*) AS n FROM alarms "  # noqa: S608
                f"WHERE site IN ({marks}) AND {_OPEN_IN} GROUP BY site",
                [*sites, *OPEN_STATES],
            )
        }

    def open_alarms_page(
        self, page: int = 1, per_page: int = 50, site: str | None = None
    ) -> dict[str, Any]:
        """One page of the open alarms as the live view ranks them: not yet acknowledged
        first, then P1 first, then oldest first; ``site``: one site's. {"alarms", "total",
        "new", "page", "per_page"}. Two groups (new, handled), each read through alarms_open
        (or alarms_site for one site) only as far as the page."""
        per_page = max(1, min(per_page, MAX_PER_PAGE))
        page = max(1, page)
        only, extra = (" AND site = ?", [site]) if site is not None else ("", [])
        groups = [("police_state = ?", ["new"]), ("police_state IN (?, ?)", list(OPEN_STATES[1:]))]
        tx: Tx
        with self.db.read() as tx:
            counts = {
                str(r["police_state"]): int(r["n"])
                for r in tx.execute(
                    "SELECT police_state, COUNT(*) AS n FROM alarms "  # noqa: S608
                    f"WHERE {_OPEN_IN}{only} GROUP BY police_state",
                    [*OPEN_STATES, *extra],
                ).rows
            }
            sizes = [counts.get("new", 0), sum(counts.get(s, 0) for s in OPEN_STATES[1:])]
            rows: list[dict[str, Any]] = []
            for index, skip, take in _page_slices(sizes, (page - 1) * per_page, per_page):
                where, values = groups[index]
                rows += tx.execute(
                    f"SELECT {ALARM_COLUMNS} FROM alarms WHERE {where}{only} "  # noqa: S608
                    "ORDER BY priority, raised_at, event_id LIMIT ? OFFSET ?",
                    [*values, *extra, take, skip],
                ).rows
        return {
            "alarms": [alarm_row(r) for r in rows],
            "total": sum(sizes),
            "new": sizes[0],
            "page": page,
            "per_page": per_page,
        }

    def snapshots_of(self, alarms: list[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
        """The snapshots of several alarms, (site, event_id) each, by event id: one query per
        100 alarms through the unique index (site, event_id, camera)."""
        found: dict[str, list[dict[str, Any]]] = {event_id: [] for _, event_id in alarms}
        for at in range(0, len(alarms), 100):
            chunk = alarms[at : at + 100]
            where = " OR ".join("(site = ? AND event_id = ?)" for _ in chunk)
            rows = self._rows(
                "SELECT event_id, camera, sha256, bytes, received_at, verified "  # noqa: S608
                f"FROM snapshots WHERE {where} ORDER BY event_id, camera",
                [value for pair in chunk for value in pair],
            )
            for r in rows:
                verified = None if r["verified"] is None else bool(r["verified"])
                found[str(r["event_id"])].append(
                    {k: r[k] for k in ("camera", "sha256", "bytes", "received_at")}
                    | {"verified": verified}
                )
        return found
