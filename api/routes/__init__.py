"""One module per resource; `api.main` mounts them. Health is at the root, the rest under `API_PREFIX`.

Each router carries its full prefix (so a route's `path` is the template the metrics are labelled with).
"""

API_PREFIX = "/v1"
