"""libpq's multi-host URLs in the form SQLAlchemy parses.

libpq (and so psql, pg_dump, every libpq driver) writes several hosts in the authority part:
`postgresql://u:p@h1:5432,h2:5432,h3:5432/db?target_session_attrs=read-write`. SQLAlchemy's URL
parser reads that as one host with the port "5432,h2:5432,h3:5432" and fails; it takes the same
hosts as repeated `host=` query parameters instead, and hands psycopg2 the `host` and `port` lists
libpq expects. Converting here lets DATABASE_URL be the URL operators already use everywhere.
"""

from __future__ import annotations

import re

# scheme, optional user info, the host list, then path and query
_AUTHORITY = re.compile(
    r"^(?P<scheme>[a-z0-9+]+://)(?P<user>[^@/?#]*@)?(?P<hosts>[^/?#]*)(?P<rest>.*)$", re.I
)


def sqlalchemy_url(url: str) -> str:
    """`url` with a comma-separated host list moved into `host=` query parameters; others unchanged."""
    match = _AUTHORITY.match(url)
    if match is None or "," not in match["hosts"]:
        return url
    hosts = [host for host in match["hosts"].split(",") if host]
    if any(host.startswith("[") for host in hosts):
        raise ValueError("DATABASE_URL: IPv6 literals are not supported in a multi-host URL; use host names")
    rest = match["rest"] or "/"
    if "?" not in rest:
        rest += "?"
    elif not rest.endswith(("?", "&")):
        rest += "&"
    return f"{match['scheme']}{match['user'] or ''}{rest}" + "&".join(f"host={host}" for host in hosts)
