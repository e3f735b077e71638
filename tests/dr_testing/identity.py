"""An identity provider for tests with several users: the token names the user (`token-alice`)."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.identity import IdentityProvider, User


class TokenPerUserIdentityProvider(IdentityProvider):
    """`Authorization: token token-<name>` authenticates as <name>; anything else is anonymous."""

    @property
    def auth_enabled(self) -> bool:
        return True

    async def get_user(self, handler: Any) -> User | None:
        header = handler.request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "token" and value.startswith("token-"):
            handler._token_authenticated = True
            return User(username=value.removeprefix("token-"))
        return None
