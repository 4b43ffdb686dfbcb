"""The unversioned paths (`/jobs`, `/jobs/...`, `/datasets...`, `/comparisons...`, `/similarity...`) answer
308 Permanent Redirect to their `/v1` twins: method, body and query string kept, so
`curl -L -X POST /jobs -d @job.json` creates a job as `POST /v1/jobs` does.

    app.include_router(redirect_router([datasets.router, jobs.router, ...]))  # one redirect per route

Each /v1 route under those prefixes gets a twin without the prefix, with the same methods, documented in
the OpenAPI document with its 308 (and the `Location` header) only: the twin checks nothing (no key, no
body); the /v1 route it leads to does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from api.routes import API_PREFIX

__all__ = ["UNVERSIONED", "redirect_router"]

UNVERSIONED = ("/jobs", "/datasets", "/comparisons", "/similarity")
_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


async def redirect_to_v1(request: Request) -> RedirectResponse:
    """308 to the same path under API_PREFIX with the same query string (the path as it was sent)."""
    path = request.scope.get("raw_path") or request.url.path.encode()
    target = API_PREFIX + path.decode("latin-1")
    query = request.scope.get("query_string") or b""
    if query:
        target += "?" + query.decode("latin-1")
    return RedirectResponse(target, status_code=308)


def _is_unversioned_twin(path: str) -> bool:
    return any(path == API_PREFIX + p or path.startswith(API_PREFIX + p + "/") for p in UNVERSIONED)


def _openapi(target: str) -> dict:
    """The operation's documentation: its path parameters and its one answer, the 308."""
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(target)
    ]
    responses: dict = {
        "308": {
            "description": f"Permanent Redirect to `{target}` (method, body and query string kept)",
            "headers": {"Location": {"description": "the /v1 path", "schema": {"type": "string"}}},
        }
    }
    if params:  # a parameter value with an encoded '/' leaves the template: no route, 404
        responses["404"] = {"description": "no such path"}
    return {"parameters": params, "responses": responses} if params else {"responses": responses}


def redirect_router(routers: Iterable[APIRouter]) -> APIRouter:
    """A router with one redirect per documented /v1 route of `routers` under UNVERSIONED, in order."""
    router = APIRouter(tags=["unversioned (308 to /v1)"])
    for route in (r for versioned in routers for r in versioned.routes):
        if not (isinstance(route, APIRoute) and route.include_in_schema and _is_unversioned_twin(route.path)):
            continue
        path = route.path[len(API_PREFIX) :]
        router.add_api_route(
            path,
            redirect_to_v1,
            methods=sorted(route.methods),
            name=f"{route.name}_unversioned",
            summary=f"{' / '.join(sorted(route.methods))} {path}: 308 to {route.path}",
            response_class=RedirectResponse,
            status_code=308,
            description=f"Permanent redirect to `{route.path}`: the same method, body and query string; "
            "follow it (`curl -L`, httpx `follow_redirects=True`).",
            response_description=f"Permanent Redirect to `{route.path}`",
            openapi_extra=_openapi(route.path),
        )
    return router
