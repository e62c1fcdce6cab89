"""ASGI entry point: plain HTTP through Django, websockets through Channels.

Websockets sit behind AuthMiddlewareStack (the session cookie identifies the user) and an
origin validator (a page on another site cannot open a socket with our user's cookie).

Database connections come from a pool here (DB_POOL_SIZE, settings): Django runs each request's
synchronous part in a new thread, where a persistent connection would be a new PostgreSQL
session per request.
"""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Settings read DB_POOL_SIZE once, while the application loads; the default is not left in the
# environment of processes this one starts (Celery workers keep a persistent connection).
_pool_by_default = "DB_POOL_SIZE" not in os.environ
if _pool_by_default:
    os.environ["DB_POOL_SIZE"] = "10"
django_asgi_app = get_asgi_application()
if _pool_by_default:
    del os.environ["DB_POOL_SIZE"]

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry loaded)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# Everything loaded so far (modules, settings, URL patterns) lives as long as the process.
# Frozen, it is left out of garbage collections: a full collection then walks what requests
# created, not the whole application (200-400 ms per full collection on a loaded 2-CPU machine).
gc.freeze()
