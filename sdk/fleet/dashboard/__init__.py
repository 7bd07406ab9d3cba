"""``ember fleet serve``: a live web dashboard of a fleet (Starlette + uvicorn, server-sent events).

    from sdk.fleet.dashboard import serve
    serve("mqtt://127.0.0.1:1883", "sim", db="fleet.db")          # blocks; http://127.0.0.1:8080/

See README.md in this folder.
"""

from sdk.fleet.dashboard.app import make_app
from sdk.fleet.dashboard.live import LiveFleet
from sdk.fleet.dashboard.server import DashboardServer, serve

__all__ = ["DashboardServer", "LiveFleet", "make_app", "serve"]
