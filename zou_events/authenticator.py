"""Deciding whether a connecting socket is someone: local token checks, then Zou's word."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import structlog

from zou_events.auth import (
    AuthRefused,
    Identity,
    VerifiedTokens,
    handshake_token,
    payload_token,
)
from zou_events.zou_api import ZouApi, ZouRejectedToken, ZouUnavailable

log = structlog.get_logger("zou_events.authenticator")

IsRevoked = Callable[[str], bool]  # jti -> revoked in Zou's store (raises when unknown)


class Authenticator:
    def __init__(
        self,
        secret_key: str,
        is_revoked: IsRevoked | None,
        zou: ZouApi | None,
        revocation_bound: float,
    ) -> None:
        """``revocation_bound``: how long a token Zou revoked may still be accepted (the
        revocation sweep's interval); Zou's cached answer for a bot token is no older."""
        self._tokens = VerifiedTokens(secret_key)
        self._is_revoked = is_revoked
        self._zou = zou
        self._revocation_bound = revocation_bound

    def authenticate(self, environ: dict[str, Any], auth: Any) -> Identity:
        """The socket's identity, or AuthRefused with Zou's reason (Zou 1.0.97's order)."""
        from_handshake = handshake_token(environ)
        from_payload = payload_token(auth)
        if from_handshake is None:
            if from_payload is None:
                raise AuthRefused("missing_token")
            return self._check(from_payload, "auth")
        try:
            return self._check(*from_handshake)
        except AuthRefused:
            if from_payload is None:
                raise
            return self._check(from_payload, "auth")

    def vouches(self, environ: dict[str, Any]) -> bool:
        """Whether a handshake carries a token that passes the local checks (signature,
        claims, expiry): its session is a person's, whose client may be slow to send its
        CONNECT (pending_sessions.py). Revocation and Zou's word are asked at the CONNECT."""
        found = handshake_token(environ)
        if found is None:
            return False
        try:
            self._tokens.verify(*found, time.time())
        except AuthRefused:
            return False
        return True

    def _check(self, token: str, source: str) -> Identity:
        identity = self._tokens.verify(token, source, time.time())
        revocation_checked = self._check_revocation(identity)
        if self._zou is None:
            if revocation_checked is False:
                raise AuthRefused("zou_unavailable")  # nobody can tell whether it was revoked
            return identity
        try:
            # Without our own revocation check, only a fresh answer from Zou will do: for
            # bot tokens (revoked in Zou's database) one no older than the revocation bound.
            account = self._zou.account(
                token,
                identity.jti,
                fallback_to_stale=revocation_checked is True,
                max_age=None if revocation_checked is not None else self._revocation_bound,
            )
        except ZouUnavailable:
            raise AuthRefused("zou_unavailable") from None
        except ZouRejectedToken:
            raise AuthRefused("invalid_token") from None
        if account is None:
            raise AuthRefused("unknown_account")
        if not account.active:
            raise AuthRefused("inactive")
        return replace(identity, is_preview_account=account.preview_project_id is not None)

    def still_valid(self, identity: Identity) -> bool:
        """Zou's word now on a connected token it alone can revoke (bot, person_api): False
        once revoked, or its account gone or inactive. ZouUnavailable when Zou cannot
        tell, a token Zou cannot decode included (a SECRET_KEY changed under us)."""
        assert self._zou is not None
        try:
            account = self._zou.recheck(identity.token, identity.jti)
        except ZouRejectedToken:
            raise ZouUnavailable("token rejected") from None
        return account is not None and account.active

    def _check_revocation(self, identity: Identity) -> bool | None:
        """True when Zou's store was read, False when it could not be, None without one.

        Only person tokens are revoked in Redis; bot tokens are checked by Zou's API.
        """
        if identity.identity_type != "person" or self._is_revoked is None:
            return None
        try:
            revoked = self._is_revoked(identity.jti)
        except Exception as error:  # Redis down: Zou's API still checks revocation itself
            log.warning("revocation store unreachable", error=str(error))
            return False
        if revoked:
            raise AuthRefused("revoked")
        return True
