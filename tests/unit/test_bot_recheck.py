"""The revocation sweep of tokens only Zou's API can judge (bot, person_api): one question
per distinct token, a few at a time, revoked ones cut, and nothing cut when Zou cannot tell."""

from __future__ import annotations

import gevent

from zou_events.auth import Identity
from zou_events.sessions import RECHECK_CONCURRENCY, Sessions
from zou_events.zou_api import ZouUnavailable


def identity(jti: str, kind: str = "bot") -> Identity:
    return Identity(
        person_id=f"person-{jti}",
        jti=jti,
        identity_type=kind,
        expires_at=None,
        source="header",
        token=f"token-{jti}",
    )


class Zou:
    """Answers per jti: True (valid), False (revoked), or "down" (ZouUnavailable)."""

    def __init__(self, answers: dict[str, bool | str]) -> None:
        self.answers = answers
        self.asked: list[str] = []
        self.running = self.most_at_once = 0

    def __call__(self, who: Identity) -> bool:
        self.asked.append(who.jti)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            gevent.sleep(0.01)  # a request in flight
            answer = self.answers[who.jti]
            if answer == "down":
                raise ZouUnavailable("timeout")
            return bool(answer)
        finally:
            self.running -= 1


def sessions(zou: Zou, revoked: set[str] | None = None) -> tuple[Sessions, list[tuple[str, str]]]:
    kicked: list[tuple[str, str]] = []
    store = (lambda jtis: {j for j in jtis if j in revoked}) if revoked is not None else None
    return Sessions(lambda sid, _id, reason: kicked.append((sid, reason)), store, 10.0, zou), kicked


def test_each_distinct_token_is_asked_once_and_its_every_socket_cut_when_revoked() -> None:
    zou = Zou({"a": True, "b": False})
    tracked, kicked = sessions(zou)
    for n in range(3):
        tracked.add(f"a{n}", identity("a"))
        tracked.add(f"b{n}", identity("b", "person_api"))
    assert tracked.sweep() == 3
    assert sorted(zou.asked) == ["a", "b"]
    assert sorted(kicked) == [
        ("b0", "token_revoked"),
        ("b1", "token_revoked"),
        ("b2", "token_revoked"),
    ]


def test_questions_are_bounded_in_concurrency() -> None:
    zou = Zou({str(n): True for n in range(40)})
    tracked, kicked = sessions(zou)
    for n in range(40):
        tracked.add(f"s{n}", identity(str(n)))
    tracked.sweep()
    assert len(zou.asked) == 40 and kicked == []
    assert 1 < zou.most_at_once <= RECHECK_CONCURRENCY


def test_when_zou_cannot_tell_the_sockets_stay() -> None:
    zou = Zou({"down": "down", "revoked": False})
    tracked, kicked = sessions(zou)
    tracked.add("kept", identity("down"))
    tracked.add("cut", identity("revoked"))
    assert tracked.sweep() == 1
    assert kicked == [("cut", "token_revoked")]


def test_person_tokens_are_read_from_the_store_not_asked_of_zou() -> None:
    zou = Zou({"bot": True})
    tracked, kicked = sessions(zou, revoked={"gone"})
    tracked.add("p1", identity("gone", "person"))
    tracked.add("p2", identity("fine", "person"))
    tracked.add("b1", identity("bot"))
    assert tracked.sweep() == 1
    assert kicked == [("p1", "token_revoked")]
    assert zou.asked == ["bot"]


def test_without_a_store_zou_judges_person_tokens_too() -> None:
    zou = Zou({"gone": False})
    tracked, kicked = sessions(zou, revoked=None)
    tracked.add("p1", identity("gone", "person"))
    assert tracked.sweep() == 1 and kicked == [("p1", "token_revoked")]
