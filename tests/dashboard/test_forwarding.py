"""Logins through the dashboard count against each browser's address, not the dashboard's.

The auth service trusts the dashboard (`TRUSTED_PROXIES`, its loopback address here) and the
dashboard forwards each browser's address; browsers are told apart by their source address
(the whole of 127.0.0.0/8 reaches the loopback interface).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import httpx

from payments_common.server import RunningServer
from tests.dashboard.conftest import running_dashboard
from tests.helpers import Caller


def _log_in(url: str, source: str, email: str, password: str) -> int:
    """The dashboard's answer to the login form posted from `source`, as a browser would."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=url, transport=transport, timeout=20) as browser:
        form = browser.get("/login").text
        token = re.search(r'name="login_token" value="([^"]+)"', form)
        assert token is not None
        fields = {
            "email": email,
            "password": password,
            "login_token": token.group(1),
            "next": "/transactions",
        }
        return browser.post("/login", data=fields).status_code


def test_one_persons_failed_logins_do_not_lock_out_another_using_the_same_dashboard(
    start_auth: Callable[..., RunningServer], tx_address: str, new_user: Callable[..., Caller]
) -> None:
    auth = start_auth(login_peer_max_failures=3, trusted_proxies="127.0.0.1")
    owner = new_user()
    guesser, person = (f"127.{random.randint(1, 250)}.{random.randint(1, 250)}.{n}" for n in (1, 2))
    with running_dashboard(f"127.0.0.1:{auth.port}", tx_address) as dashboard:
        answers = [
            _log_in(dashboard.url, guesser, f"nobody-{n}-{random.random()}@example.com", "wrong")
            for n in range(4)
        ]
        assert answers[:3] == [401, 401, 401] and answers[3] == 429, answers  # the guesser is stopped
        assert _log_in(dashboard.url, guesser, owner.email, owner.password) == 429  # even with the right one
        assert _log_in(dashboard.url, person, owner.email, owner.password) == 303  # another person is not
