"""CSRF tokens for the console's forms: pure, stateless, bound to the visitor.

A token is an HMAC (the instance's secret key) of what binds it to one visitor: the
session's cookie token once signed in, or a random pre-sign-in cookie on the login form.
Another site can make a browser send the cookies, but cannot read the page that holds
the token, so a POST that carries a valid one came from our own form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

FIELD = "csrf"


def token_for(secret: str, binding: str) -> str:
    """The form token for a visitor bound by ``binding``."""
    mac = hmac.new(secret.encode(), b"kith-csrf\x00" + binding.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def is_valid(secret: str, binding: str | None, given: object) -> bool:
    """Does a submitted token belong to this visitor? (Constant-time comparison.)"""
    if not binding or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(token_for(secret, binding), given)
