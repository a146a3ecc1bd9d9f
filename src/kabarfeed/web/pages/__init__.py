"""The subscription pages: sign up with double opt-in, confirm, preferences,
unsubscribe (with RFC 8058 one-click), and the "view in browser" digest.
One module per group of routes (:mod:`.subscribe`, :mod:`.confirm`,
:mod:`.manage`, :mod:`.archive`) on a shared :mod:`.core`; :mod:`.routes`
mounts them.

Rules every handler keeps:

* a GET never changes state (mail scanners prefetch links);
* every state-changing form carries a CSRF token (:mod:`kabarfeed.web.security`)
  except the RFC 8058 one-click POST, which mail providers send without
  cookies or tokens;
* unknown or malformed tokens get the same 404 page; tokens are compared in
  constant time after the lookup;
* sign-up answers the same way whether or not the address is known;
* database work runs in the thread pool, mail in a background task after the
  response (:mod:`kabarfeed.web.confirmations`).
"""

from kabarfeed.web.pages.core import CSRF_COOKIE, Pages
from kabarfeed.web.pages.routes import create_pages, page_routes

__all__ = ["CSRF_COOKIE", "Pages", "create_pages", "page_routes"]
