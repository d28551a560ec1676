"""What every HTTP connector shares: one verifying TLS context for all its clients."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once: building it loads the CA bundle, which costs
    more than a whole sandbox call (about 150 ms on a busy 2-core machine), per client.
    """
    return httpx.create_ssl_context()
