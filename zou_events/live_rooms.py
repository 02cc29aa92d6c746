"""The open review rooms, one set of series per room, for the dashboard's live-reviews table.

The only metrics labelled by a room: their number of series is bounded by the rooms open in
the cluster and capped by ``ZOU_EVENTS_METRICS_ROOMS_MAX``. The reporting instance (see
rooms/liveness.py) sets the list on every heartbeat, every other instance an empty one, and
the series are built at scrape time from that list: a closed room's series are gone from the
next scrape, with nothing to remove.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # metrics imports this module, and the names store imports metrics
    from zou_events.rooms.names import NamesStore
    from zou_events.rooms.store import OpenRoom


@dataclass(frozen=True)
class LiveRoom:
    room_id: str  # the playlist id (Kitsu's rooms are playlists)
    people: int
    sockets: int  # joined sockets
    opened_at: float | None  # Unix time; None for a room created by an older version
    project: str  # names from Zou's API, empty until someone entered since they were known
    playlist: str


def most_watched(rooms: Sequence[OpenRoom], limit: int) -> list[OpenRoom]:
    """The rooms shown when more are open than the cap: most people first, then the oldest."""
    ranked = sorted(rooms, key=lambda room: (-room.people, room.opened_at or 0.0, room.room_id))
    return ranked[:limit]


class LiveRoomsCollector(Collector):
    def __init__(self) -> None:
        self._rooms: tuple[LiveRoom, ...] = ()

    def show(self, rooms: Sequence[LiveRoom]) -> None:
        self._rooms = tuple(rooms)  # replaced whole: a scrape reads one list or the other

    def collect(self) -> Iterator[Metric]:
        rooms = self._rooms
        info = GaugeMetricFamily(
            "zou_events_review_room_info",
            "An open review room (always 1): its production and playlist names from Zou's API",
            labels=["room", "project", "playlist"],
        )
        people = GaugeMetricFamily(
            "zou_events_review_room_people", "People in an open review room", labels=["room"]
        )
        sockets = GaugeMetricFamily(
            "zou_events_review_room_sockets",
            "Sockets that joined an open review room",
            labels=["room"],
        )
        opened = GaugeMetricFamily(
            "zou_events_review_room_opened_timestamp_seconds",
            "Unix time at which an open review room was opened",
            labels=["room"],
        )
        for room in rooms:
            info.add_metric([room.room_id, room.project, room.playlist], 1)
            people.add_metric([room.room_id], room.people)
            sockets.add_metric([room.room_id], room.sockets)
            if room.opened_at is not None:
                opened.add_metric([room.room_id], room.opened_at)
        yield from (info, people, sockets, opened)


class LiveRoomsExport:
    """What the reporting instance exports of the cluster's open rooms: the most watched
    ``limit`` rooms (0: none), with their names when known."""

    def __init__(self, collector: LiveRoomsCollector, names: NamesStore, limit: int) -> None:
        self._collector = collector
        self._names = names
        self._limit = limit

    def show(self, rooms: Sequence[OpenRoom]) -> None:
        chosen = most_watched(rooms, self._limit)
        names = self._names.lookup([room.room_id for room in chosen]) if chosen else {}
        self._collector.show(
            [
                LiveRoom(
                    room_id=room.room_id,
                    people=room.people,
                    sockets=room.sockets,
                    opened_at=room.opened_at,
                    project=named.project if (named := names.get(room.room_id)) else "",
                    playlist=named.playlist if named else "",
                )
                for room in chosen
            ]
        )
