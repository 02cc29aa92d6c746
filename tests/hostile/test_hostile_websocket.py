"""Hostile WebSocket clients (issue 10, items 1 and 6, undecodable packets, close codes):
each attack runs for 10 s against the live instance under attack_window's bounds, and the
attacker must be cut or refused with a counted reason."""

from __future__ import annotations

import json
import struct
from collections import Counter

import pytest

from tests.hostile.attackers import Tally, connect, frames, in_parallel, repeat_until_cut
from tests.hostile.support import Counted, Instance, attack_window
from tests.support.raw_eio import Polling
from tests.support.raw_websocket import OP_BINARY, OP_CLOSE, OP_CONTINUATION, RawWebSocket, frame

CUT = "zou_events_sockets_cut_total"
ATTACKERS = 2  # sockets per attack class, each in its own thread

FLOODS = {
    "socketio_events": frames('42/events,["hostile:flood",{"n":1}]', repeat=500),
    "engineio_pings": frames("2", repeat=2000),
}


@pytest.mark.parametrize("authenticated", [True, False], ids=["with_token", "no_token"])
@pytest.mark.parametrize("kind", FLOODS)
def test_message_flood_is_cut(instance: Instance, kind: str, authenticated: bool) -> None:
    """Small messages written faster than any client needs: the reader yields, the socket
    is cut past its inbound budget, nobody else notices."""
    batch = FLOODS[kind]
    tally = Tally()
    expect = [Counted(CUT, {"reason": "inbound_flood"})]
    with attack_window(
        instance, f"flood {kind} {'auth' if authenticated else 'no token'}", expect
    ) as window:
        cookie = instance.cookie() if authenticated else None
        in_parallel(
            ATTACKERS,
            lambda: repeat_until_cut(instance, window, cookie, lambda ws: ws.send(batch), tally),
        )
        window.notes["attacker"] = dict(tally.counts)


ONE_BYTE_FRAGMENTS = frame(b"x", OP_CONTINUATION, fin=False) * 10_000


def test_one_megabyte_in_one_byte_fragments_is_cut(instance: Instance) -> None:
    """A 1 MB text message as 1-byte continuation frames: every fragment is metered."""
    tally = Tally()
    expect = [Counted(CUT, {"reason": ("inbound_flood", "too_big")})]

    def attack(ws: RawWebSocket) -> None:
        ws.send(frame(b"4", fin=False))
        for _ in range(105):  # 1.05 MB of fragments, then the message would end
            ws.send(ONE_BYTE_FRAGMENTS)
        ws.send(frame(b"", OP_CONTINUATION))

    with attack_window(instance, "1 MB in 1-byte fragments", expect) as window:
        in_parallel(
            ATTACKERS, lambda: repeat_until_cut(instance, window, instance.cookie(), attack, tally)
        )
        window.notes["attacker"] = dict(tally.counts)


ATTACHMENT = frame(b"\xab" * 32_768, OP_BINARY)


@pytest.mark.parametrize("authenticated", [True, False], ids=["with_token", "no_token"])
def test_binary_attachments_without_an_end_are_cut(instance: Instance, authenticated: bool) -> None:
    """A binary event announcing 63 attachments, then attachments that never complete it
    (each new announcement starts over): bounded by maxPayload in total."""
    announce = frame(b'463-/events,["hostile:binary",{"_placeholder":true,"num":0}]')
    tally = Tally()
    expect = [Counted(CUT, {"reason": ("too_big", "inbound_flood", "bad_packet")})]

    def attack(ws: RawWebSocket) -> None:
        ws.send(announce)
        for _ in range(62):
            ws.send(ATTACHMENT)

    with attack_window(
        instance, f"binary attachments {'auth' if authenticated else 'no token'}", expect
    ) as window:
        cookie = instance.cookie() if authenticated else None
        in_parallel(ATTACKERS, lambda: repeat_until_cut(instance, window, cookie, attack, tally))
        window.notes["attacker"] = dict(tally.counts)


UNDECODABLE = frames("4x", '42/events,["broken', "4/events,", '42/events,{"a":', repeat=25)
LINES_PER_KIND = 25  # log_limit: 10 lines per 10 s per (event, reason), a window spans two


def test_undecodable_packets_do_not_flood_the_log(instance: Instance) -> None:
    """Packets that cannot be decoded are counted, but the log gets a bounded number of lines
    about them (the issue saw 20,000 lines in 10 s)."""
    log_start = instance.server.log_path.stat().st_size
    tally = Tally()
    expect = [Counted("zou_events_client_packets_dropped_total", at_least=100)]

    def attack(ws: RawWebSocket) -> None:
        ws.send(UNDECODABLE)

    with attack_window(instance, "undecodable packets", expect) as window:
        in_parallel(
            ATTACKERS, lambda: repeat_until_cut(instance, window, instance.cookie(), attack, tally)
        )
        window.notes["attacker"] = dict(tally.counts)
        with instance.server.log_path.open("rb") as log:
            log.seek(log_start)
            lines = [json.loads(line) for line in log.read().splitlines() if line.startswith(b"{")]
        per_kind = Counter(
            f"{line['event']} ({line.get('reason')})" for line in lines if line["level"] != "info"
        )
        window.notes["log_lines"] = dict(per_kind)
        window.check(max(per_kind.values(), default=0) <= LINES_PER_KIND, f"log lines: {per_kind}")
        window.check(not [line for line in lines if "exception" in line], "a traceback was logged")


# RFC 6455 §7.4: codes an endpoint must not send (reserved, unassigned), a one-byte payload,
# a reason that is not UTF-8.
BAD_CLOSES = {
    **{
        f"code {code}": (struct.pack("!H", code), 1002)
        for code in (1004, 1005, 1006, 1015, 1016, 2999, 999, 5000)
    },
    "one-byte payload": (b"\x03", 1002),
    "reason not UTF-8": (struct.pack("!H", 1000) + b"\xff\xfe", 1007),
}


def test_invalid_close_frames_get_a_protocol_error(instance: Instance) -> None:
    expect = [Counted(CUT, {"reason": "protocol_error"}, at_least=len(BAD_CLOSES))]
    answered: dict[str, set[int | None]] = {case: set() for case in BAD_CLOSES}
    tally = Tally()
    with attack_window(instance, "invalid close frames", expect) as window:
        for _ in window.running(limit=100_000):
            # One socket after another as fast as they close: past admission's new-session
            # rate the handshake is refused (503), counted, and the next attempt goes on.
            ws = connect(instance, instance.cookie(), tally)
            if ws is None:
                continue
            case = list(BAD_CLOSES)[tally.counts["connections"] % len(BAD_CLOSES)]
            with ws:
                ws.send(frame(BAD_CLOSES[case][0], OP_CLOSE))
                answered[case].add(ws.close_code())
        window.notes["attacker"] = {
            **{case: sorted(map(str, codes)) for case, codes in answered.items()},
            **tally.counts,
        }
        wrong = {case: codes for case, codes in answered.items() if codes != {BAD_CLOSES[case][1]}}
        window.check(not wrong, f"answered with other close codes: {wrong}")


GARBAGE_FIRST = {"empty": b"", "not a packet": b"\x00garbage", "upgrade packet first": b"9"}


def test_garbage_first_websocket_message_leaves_polling_working(instance: Instance) -> None:
    """An upgrade probe whose first message is empty or garbage closes only that WebSocket:
    the polling session it came from goes on (the issue saw a traceback and a wedged
    session)."""
    expect = [Counted(CUT, {"reason": ("bad_packet", "protocol_error")})]
    log_start = instance.server.log_path.stat().st_size
    rounds: Counter[str] = Counter()
    with attack_window(instance, "garbage first websocket message", expect) as window:
        for count in window.running(limit=100_000):
            case = list(GARBAGE_FIRST)[count % len(GARBAGE_FIRST)]
            polling = Polling(instance.url, {"Cookie": instance.cookie()})
            assert polling.post("40/events,") == 200
            assert polling.get(timeout=5)[0].startswith("40/events,")
            with RawWebSocket(
                instance.port, f"EIO=4&transport=websocket&sid={polling.sid}", instance.cookie()
            ) as ws:
                assert ws.status == 101
                ws.send(frame(GARBAGE_FIRST[case]))
                ws.close_code()
            alive = polling.post("3") == 200
            window.check(alive, f"{case}: the polling session was closed")
            rounds[case if alive else f"{case}: session closed"] += 1
        window.notes["attacker"] = dict(rounds)
        log = instance.server.log_path.read_bytes()[log_start:]
        window.check(b"Traceback" not in log, "a traceback was logged")
