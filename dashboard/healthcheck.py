"""`python -m dashboard.healthcheck [URL]`: exit 0 when the dashboard answers its /healthz.

For container health checks (the image has no curl). Without a URL it asks
http://127.0.0.1:$DASHBOARD_PORT/healthz. Over HTTPS the certificate is not checked: this
only asks whether the local process serves, and its certificate names a public host.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request


def main(argv: list[str] | None = None) -> int:
    """Probe once; print the answer (or why there was none)."""
    args = sys.argv[1:] if argv is None else argv
    url = args[0] if args else f"http://127.0.0.1:{os.environ.get('DASHBOARD_PORT', '8080')}/healthz"
    if not url.startswith(("http://", "https://")):
        print("unhealthy: the URL must be http:// or https://", file=sys.stderr)
        return 2
    context = ssl._create_unverified_context() if url.startswith("https://") else None  # noqa: S323
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as reply:  # noqa: S310 (checked above)
            print(reply.read().decode(errors="replace").strip())
            return 0 if reply.status == 200 else 1
    except (urllib.error.URLError, OSError) as err:
        print(f"unhealthy: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
