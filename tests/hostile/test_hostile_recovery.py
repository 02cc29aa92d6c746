"""Hostile recovery fields (issue 14): CONNECT packets whose auth payload carries invented,
oversized or mistyped ``pid`` and ``offset`` values, sent back to back over cookie WebSockets
for 10 s while the canary keeps receiving. Each must get an ordinary fresh connection (a
new pid, nothing replayed), the invented pids counted as unknown."""

from __future__ import annotations

import json
import secrets

from tests.hostile.attackers import Tally, in_parallel
from tests.hostile.support import Counted, Instance, attack_window
from tests.support.raw_websocket import RawWebSocket

ATTACKERS = 2
BOGUS_AUTH: list[object] = [
    {"pid": "{token}", "offset": "{token}"},  # well-formed, but nobody's
    {"pid": "x" * 100_000, "offset": "y" * 100_000},
    {"pid": 12345, "offset": ["a", {"b": None}]},
    {"pid": None, "offset": None},
    {"pid": "../../etc", "offset": "\u0000\ud7ff"},
    {"pid": {"$gt": ""}, "offset": 1e308},
]


def connect_payload(case: object) -> str:
    text = json.dumps(case)
    return "40/events," + text.replace("{token}", secrets.token_urlsafe(16))


def test_invented_recovery_fields_get_a_fresh_connection(instance: Instance) -> None:
    tally = Tally()
    expect = [Counted("zou_events_recoveries_total", {"outcome": "unknown_pid"}, at_least=10)]
    wrong: list[str] = []

    def attack() -> None:
        for count in window.running(limit=50_000):
            ws = RawWebSocket(instance.port, "EIO=4&transport=websocket", instance.cookie())
            with ws:
                if ws.status != 101:  # admission's new-session rate: counted, go on
                    tally.add(f"refused {ws.status}")
                    continue
                ws.read_text()  # Engine.IO open
                ws.send_text(connect_payload(BOGUS_AUTH[count % len(BOGUS_AUTH)]))
                answer = ws.read_text()
                tally.add("connections")
                if not answer.startswith("40/events,") or '"pid"' not in answer:
                    wrong.append(answer[:200])

    with attack_window(instance, "invented recovery fields", expect) as window:
        in_parallel(ATTACKERS, attack)
        window.notes["attacker"] = dict(tally.counts)
        window.check(not wrong, f"not a fresh connection: {wrong[:3]}")
