"""Security headers for HTML pages (and the files they load).

Every page a browser renders gets a Content-Security-Policy written for that page, plus the
same fixed set: no MIME sniffing, no framing by other sites (CSP `frame-ancestors` and the
older X-Frame-Options), a Referrer-Policy, and a Permissions-Policy that grants only the
browser features the page uses.
"""

from __future__ import annotations

from collections.abc import Iterable

# Features no fieldmesh page uses; a page adds back what it needs (geolocation, WebXR).
# Only names Chromium knows: it reports an unknown one ("bluetooth") as an error on every
# page, and a browser that does not know a feature has no such feature to deny.
_DENIED_FEATURES = ("camera", "microphone", "payment", "usb", "serial", "midi")


def permissions_policy(allow_self: Iterable[str] = ()) -> str:
    allowed = tuple(allow_self)
    parts = [f"{f}=(self)" for f in allowed]
    parts += [f"{f}=()" for f in _DENIED_FEATURES if f not in allowed]
    return ", ".join(parts)


def page_headers(
    csp: str,
    *,
    allow_features: Iterable[str] = (),
    referrer: str = "same-origin",
) -> dict[str, str]:
    """Headers for an HTML page with the given Content-Security-Policy."""
    if "frame-ancestors" not in csp:
        csp = f"{csp.rstrip('; ')}; frame-ancestors 'none'"
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": referrer,
        "Permissions-Policy": permissions_policy(allow_features),
        "Cross-Origin-Opener-Policy": "same-origin",
    }
