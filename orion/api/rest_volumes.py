"""REST routes of volumes: which request a method and path ask for.

    GET    /volumes            ListVolumes    (?stale=true)
    POST   /volumes            CreateVolume   body: {"name", "driver", "options", "node", "access"}
    GET    /volumes/{name}     GetVolume      (?stale=true)
    DELETE /volumes/{name}     RemoveVolume   (409 while a task mounts it)

The body is checked by ``build_create_volume``, as the client's and the CLI's are, so a bad
field is a 400 naming it ("driver: unknown volume driver 'ceph' ..."). Mounts of tasks and
services (``"volumes": {"data": "/var/lib/app"}`` or ``["data:/var/lib/app:ro"]``) are part
of POST /tasks and the service bodies.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

from orion.api.protocol import Request, RequestError, validate_request
from orion.api.requests import build_create_volume
from orion.api.rest_bodies import json_object

_CREATE_FIELDS = ("name", "driver", "options", "node", "access")


class NoVolumeRoute(LookupError):
    """No volume route for this method and path (the caller answers 404)."""


def is_volume_path(path: str) -> bool:
    return path == "/volumes" or path.startswith("/volumes/")


def _create_body(raw: bytes) -> dict[str, Any]:
    value = json_object(raw)
    unknown = sorted(set(value) - set(_CREATE_FIELDS))
    if unknown:
        raise RequestError(unknown[0], f"unknown field (known: {', '.join(_CREATE_FIELDS)})")
    if not isinstance(value.get("name"), str) or not value["name"]:
        raise RequestError("name", "is required (a volume name)")
    for key in ("driver", "node", "access"):
        if key in value and not isinstance(value[key], str):
            raise RequestError(key, f"expected a string, got {value[key]!r}")
    options = value.get("options", {})
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        raise RequestError("options", 'expected an object of strings, e.g. {"type": "tmpfs"}')
    return value


def volume_request(method: str, path: str, query: str, raw_body: bytes) -> Request:
    """The request for a volume route; NoVolumeRoute if there is none, RequestError if it is bad."""
    stale = parse_qs(query).get("stale", [""])[-1].lower() == "true"
    if path == "/volumes":
        if method == "GET":
            return validate_request({"op": "ListVolumes", "stale": stale})
        if method == "POST":
            body = _create_body(raw_body)
            return build_create_volume(body.pop("name"), **body)
        raise NoVolumeRoute(f"no route {method} {path}")
    name = unquote(path.removeprefix("/volumes/"))
    if not name or "/" in name:
        raise NoVolumeRoute(f"no route {method} {path}")
    if method == "GET":
        return validate_request({"op": "GetVolume", "name": name, "stale": stale})
    if method == "DELETE":
        return validate_request({"op": "RemoveVolume", "name": name})
    raise NoVolumeRoute(f"no route {method} {path}")


def serve_volume_route(handler: Any, method: str, path: str, raw_body: bytes) -> None:
    """Answer a volume route on the REST handler (orion/api/http.py): 201 for a create."""
    try:
        request = volume_request(method, path, handler.path.partition("?")[2], raw_body)
    except NoVolumeRoute as exc:
        handler._error(HTTPStatus.NOT_FOUND, str(exc))
        return
    except RequestError as exc:
        handler._error(HTTPStatus.BAD_REQUEST, str(exc), exc.field)
        return
    handler._run(request, created=method == "POST")
