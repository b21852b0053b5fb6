"""The web console: service managers' live map and CRM screens, and the rep's phone view.

- `live_stage.py`: a gateway stage that announces committed positions, status changes,
  geofence events and dead letters with `pg_notify('fm_live', ...)`.
- `live.py`: the app side: one LISTEN connection, fanned out to browsers over WebSocket with
  a bounded queue per client.
- `live_socket.py`: the WebSocket `/console/live`: authenticates, filters the feed by the
  caller's scope, re-checks the credential and closes when it is revoked.
- `routes.py`: serves the static front end (`static/`, plain ES modules, no build step),
  Leaflet from node_modules, the console's config, and the map's scoped APIs.
"""
