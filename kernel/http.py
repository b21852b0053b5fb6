"""One way to write an HTTP endpoint: typed inputs, a declared access policy, generated OpenAPI.

    routes = Routes("telemetry")

    class DevicePath(msgspec.Struct):
        device_id: DeviceId

    @routes.get("/api/v1/devices/{device_id}", access=Access.read(scope=device_scope),
                summary="A device with its latest values")
    async def get_device(req: Req, path: DevicePath) -> DeviceOut:
        ...

    def setup(app: web.Application) -> None:
        routes.mount(app)

- The handler's parameters named `path`, `query` and `body` are decoded from the request
  into the types they are annotated with (msgspec structs; the annotation of `body` may be
  overridden with `body=` for types built at run time). Path and query strings are
  converted leniently ("12" -> 12, "false" -> False, ISO times -> datetime), bodies
  strictly as JSON. A wrong type or value is a 422 naming the field; malformed JSON, NUL
  characters and nesting deeper than 32 levels are a 400. Nothing a client sends reaches
  the handler unchecked.
- The return value is encoded with msgspec (the one JSON serialiser); `Reply` sets the
  status and headers, a `web.StreamResponse` is passed through (files, pages, streams).
- Access is deny-by-default: `access=` has no default, an `Access.users(...)` policy must
  either name a record scope (checked before the handler runs, 404 when the record may not
  be seen) or say why it needs none; `Access.public(reason)` is explicit. The principal is
  resolved by the authenticator the composition root installs (`AUTHENTICATE`).
- The OpenAPI 3.1 document is generated from the same declarations (kernel.openapi), and
  `undeclared_routes(app)` lists any route mounted some other way (a test keeps it empty).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import re
import time
import types
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, get_type_hints

import msgspec
from aiohttp import web
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from kernel.errors import ApiError, Unprocessable
from kernel.jsonlimits import MAX_DEPTH, check_depth, text_problem
from kernel.principal import ROLES, AuthError, Forbidden, Principal
from kernel.settings import Settings
from kernel.web import DB_POOL, REPLICA, SETTINGS, WROTE_COOKIE

T = TypeVar("T")

READ_ROLES: tuple[str, ...] = ROLES
WRITE_ROLES: tuple[str, ...] = tuple(r for r in ROLES if r != "viewer")
MANAGER_ROLES: tuple[str, ...] = ("admin", "manager")
ADMIN_ROLES: tuple[str, ...] = ("admin",)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_JSON_ENCODER = msgspec.json.Encoder(decimal_format="number")


class Authenticator(Protocol):
    async def __call__(self, request: web.Request) -> Principal: ...


AUTHENTICATE = web.AppKey("authenticate", Authenticator)


# --------------------------------------------------------------------------- access


class Scope(Protocol):
    """A record-level check for one endpoint: raise NotFound when the caller may not see
    the record the path names (so that its existence does not leak)."""

    async def __call__(self, req: Req, path: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class Access:
    """Who may call an endpoint, and which record scope applies."""

    roles: tuple[str, ...]  # empty: public
    scope: Scope | None = None
    reason: str = ""  # why public, or why no record scope applies

    @property
    def is_public(self) -> bool:
        return not self.roles

    @staticmethod
    def public(reason: str) -> Access:
        if not reason.strip():
            raise ValueError("a public endpoint must say why it needs no login")
        return Access((), None, reason)

    @staticmethod
    def users(
        roles: Sequence[str], *, scope: Scope | None = None, unscoped: str | None = None
    ) -> Access:
        unknown = set(roles) - set(ROLES)
        if not roles or unknown:
            raise ValueError(f"roles must be a non-empty subset of {ROLES}: {sorted(unknown)}")
        if (scope is None) == (unscoped is None):
            raise ValueError(
                "declare exactly one of scope= (a record-level check) or unscoped= (why none applies)"
            )
        return Access(tuple(roles), scope, unscoped or "")

    @staticmethod
    def read(*, scope: Scope | None = None, unscoped: str | None = None) -> Access:
        return Access.users(READ_ROLES, scope=scope, unscoped=unscoped)

    @staticmethod
    def write(*, scope: Scope | None = None, unscoped: str | None = None) -> Access:
        return Access.users(WRITE_ROLES, scope=scope, unscoped=unscoped)

    @staticmethod
    def managers(*, scope: Scope | None = None, unscoped: str | None = None) -> Access:
        return Access.users(MANAGER_ROLES, scope=scope, unscoped=unscoped)

    @staticmethod
    def admin(*, unscoped: str = "admins see every record") -> Access:
        return Access.users(ADMIN_ROLES, unscoped=unscoped)

    def describe(self) -> str:
        if self.is_public:
            return f"Public: {self.reason}"
        who = "any signed-in user" if self.roles == READ_ROLES else ", ".join(self.roles)
        where = "records the caller may see" if self.scope is not None else self.reason
        return f"Roles: {who}. Scope: {where}."


# --------------------------------------------------------------------------- request


@contextlib.asynccontextmanager
async def _autocommit(
    cm: typing.AsyncContextManager[AsyncConnection[Any]],
) -> AsyncIterator[AsyncConnection[Any]]:
    """A pooled connection without the implicit transaction: a read of one statement costs
    one round trip instead of three (BEGIN, the query, COMMIT). The pool's reset
    (kernel.web.db_pool_ctx) turns autocommit off again whatever happens here."""
    async with cm as conn:
        await conn.set_autocommit(True)
        yield conn


class Req:
    """What a handler gets besides its typed inputs."""

    __slots__ = ("_principal", "request", "scoped")

    def __init__(self, request: web.Request, principal: Principal | None) -> None:
        self.request = request
        self._principal = principal
        # what the endpoint's scope check read (e.g. the record of a by-id path), so the
        # handler need not read it again
        self.scoped: Any = None

    @property
    def user(self) -> Principal:
        if self._principal is None:  # a public endpoint asked for its caller
            raise AuthError("this action needs a signed-in user")
        return self._principal

    @property
    def principal(self) -> Principal | None:
        return self._principal

    @property
    def app(self) -> web.Application:
        return self.request.app

    @property
    def settings(self) -> Settings:
        return self.request.app[SETTINGS]

    @property
    def pool(self) -> AsyncConnectionPool[AsyncConnection[Any]]:
        return self.request.app[DB_POOL]

    def connection(
        self, *, autocommit: bool = False
    ) -> typing.AsyncContextManager[AsyncConnection[Any]]:
        """A primary connection whose transaction commits when the block ends (rolls back
        on an error); `autocommit=True` for reads, where each statement stands alone."""
        if autocommit:
            return _autocommit(self.pool.connection())
        return self.pool.connection()

    def read_connection(self) -> typing.AsyncContextManager[AsyncConnection[Any]]:
        """For reads that tolerate a few seconds of staleness (lists, reports): the
        replica when one is configured and fresh, else the primary. A caller who wrote
        within the staleness bound (kernel.web.WROTE_COOKIE), or who asks with
        `X-Read-Consistency: primary`, reads the primary."""
        router = self.request.app.get(REPLICA)
        if router is None:
            return _autocommit(self.pool.connection())
        primary = self.header("X-Read-Consistency") == "primary"
        wrote = self.request.cookies.get(WROTE_COOKIE)
        if wrote is not None:
            try:
                primary = primary or time.time() - float(wrote) <= router.max_lag_s + 1.0
            except ValueError:
                primary = True
        return _autocommit(router.connection(primary=primary))

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)


@dataclass(frozen=True, slots=True)
class Reply(Generic[T]):
    """A JSON response with a status and headers other than the endpoint's default."""

    data: T
    status: int | None = None
    headers: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class RawBody:
    """A body that is not JSON (CSV, images): the handler gets the bytes."""

    content_types: tuple[str, ...]
    description: str = ""


# --------------------------------------------------------------------------- endpoints

Handler = Callable[..., Awaitable[Any]]
_HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    access: Access
    summary: str
    description: str = ""
    tag: str = ""
    path_model: Any = None
    query_model: Any = None
    body_model: Any = None  # a msgspec-decodable type or RawBody
    response_model: Any = None  # a msgspec-encodable type, or None for no JSON body
    status: int = 200
    content_type: str | None = None  # a non-JSON response (text/html, model/gltf-binary ...)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    errors: tuple[int, ...] = ()
    websocket: bool = False
    operation_id: str = ""
    list_fields: frozenset[str] = field(default_factory=frozenset)
    time_fields: frozenset[str] = field(default_factory=frozenset)

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path


ENDPOINTS = web.AppKey("endpoints", list[Endpoint])

_MISSING = object()


def _unwrap_response(tp: Any) -> Any:
    """The JSON model of a handler's return annotation (None when it returns no JSON)."""
    if tp is None or tp is type(None):
        return None
    origin = typing.get_origin(tp)
    if origin is Reply:
        (arg,) = typing.get_args(tp)
        return _unwrap_response(arg)
    if inspect.isclass(tp) and issubclass(tp, web.StreamResponse):
        return None
    if origin in (typing.Union, types.UnionType):
        # JSON or, for a browser, a page (X | web.Response): the JSON is the model
        json_ = [
            a
            for a in typing.get_args(tp)
            if not (inspect.isclass(a) and issubclass(a, web.StreamResponse))
        ]
        if len(json_) == 1:
            return _unwrap_response(json_[0])
    return tp


_TIME_TYPES = (dt.datetime, dt.date, dt.time, dt.timedelta)


def _mentions_time(tp: Any) -> bool:
    if tp in _TIME_TYPES:
        return True
    return any(_mentions_time(a) for a in typing.get_args(tp) if not isinstance(a, msgspec.Meta))


def _time_fields(*models: Any) -> frozenset[str]:
    """Fields of times and dates: msgspec's lenient conversion would read a bare number
    there as a Unix timestamp, which no one writing a query string means."""
    out: set[str] = set()
    for model in models:
        if model is None or not (inspect.isclass(model) and issubclass(model, msgspec.Struct)):
            continue
        out.update(f.encode_name for f in msgspec.structs.fields(model) if _mentions_time(f.type))
    return frozenset(out)


_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


def _refuse_numeric_times(data: dict[str, Any], time_fields: frozenset[str], where: str) -> None:
    for name in time_fields & data.keys():
        value = data[name]
        if isinstance(value, str) and _NUMBER.match(value):
            raise Unprocessable(
                f"{where} {name}: expected an ISO 8601 date or time, not a number", field=name
            )


def _list_fields(model: Any) -> frozenset[str]:
    if model is None or not (inspect.isclass(model) and issubclass(model, msgspec.Struct)):
        return frozenset()
    out = set()
    for f in msgspec.structs.fields(model):
        tp = f.type
        args = typing.get_args(tp)
        candidates = [tp, *args]
        if any(typing.get_origin(c) in (list, tuple, set, frozenset) for c in candidates):
            out.add(f.encode_name)
    return frozenset(out)


class Routes:
    """The endpoints of one module; `mount(app)` adds them to the application."""

    def __init__(self, tag: str, description: str = "") -> None:
        self.tag = tag
        self.description = description
        self.endpoints: list[Endpoint] = []

    def add(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        access: Access,
        summary: str,
        description: str = "",
        path_model: Any = _MISSING,
        query: Any = _MISSING,
        body: Any = _MISSING,
        response: Any = _MISSING,
        status: int = 200,
        content_type: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        errors: Iterable[int] = (),
        websocket: bool = False,
        operation_id: str = "",
    ) -> Endpoint:
        method = method.upper()
        if method not in _HTTP_METHODS:
            raise ValueError(f"{method} is not an HTTP method endpoints use")
        if not isinstance(access, Access):
            raise TypeError(f"{method} {path}: access= must be an Access policy")
        hints = get_type_hints(handler)
        params = inspect.signature(handler).parameters
        for name in params:
            if name not in ("req", "path", "query", "body"):
                raise TypeError(f"{handler.__qualname__}: unexpected parameter {name!r}")

        def pick(name: str, given: Any) -> Any:
            if given is not _MISSING:
                return given
            if name in params:
                return hints.get(name, Any)
            return None

        ep = Endpoint(
            method=method,
            path=path,
            handler=handler,
            access=access,
            summary=summary,
            description=description or (inspect.getdoc(handler) or ""),
            tag=self.tag,
            path_model=pick("path", path_model),
            query_model=pick("query", query),
            body_model=pick("body", body),
            response_model=_unwrap_response(hints.get("return"))
            if response is _MISSING
            else response,
            status=status,
            content_type=content_type,
            max_body_bytes=max_body_bytes,
            errors=tuple(errors),
            websocket=websocket,
            operation_id=operation_id or f"{self.tag}_{handler.__name__}".replace("-", "_"),
        )
        ep.list_fields = _list_fields(ep.query_model)
        ep.time_fields = _time_fields(ep.query_model, ep.path_model)
        for name in ("path", "query", "body"):
            if (name in params) != (getattr(ep, f"{name}_model") is not None):
                raise TypeError(
                    f"{handler.__qualname__}: parameter {name!r} and its model disagree"
                )
        placeholders = set(re.findall(r"{(\w+)", path))
        if placeholders and ep.path_model is None:
            raise TypeError(f"{method} {path}: path parameters need a `path` model")
        self.endpoints.append(ep)
        return ep

    def _decorator(self, method: str, path: str, **opts: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(method, path, handler, **opts)
            return handler

        return register

    def get(self, path: str, **opts: Any) -> Callable[[Handler], Handler]:
        return self._decorator("GET", path, **opts)

    def post(self, path: str, **opts: Any) -> Callable[[Handler], Handler]:
        return self._decorator("POST", path, **opts)

    def put(self, path: str, **opts: Any) -> Callable[[Handler], Handler]:
        return self._decorator("PUT", path, **opts)

    def patch(self, path: str, **opts: Any) -> Callable[[Handler], Handler]:
        return self._decorator("PATCH", path, **opts)

    def delete(self, path: str, **opts: Any) -> Callable[[Handler], Handler]:
        return self._decorator("DELETE", path, **opts)

    def mount(self, app: web.Application) -> None:
        if ENDPOINTS not in app:
            app[ENDPOINTS] = []
        known = {ep.key for ep in app[ENDPOINTS]}
        for ep in self.endpoints:
            if ep.key in known:
                raise ValueError(f"{ep.method} {ep.path} is declared twice")
            app.router.add_route(ep.method, ep.path, _wrap(ep))
            app[ENDPOINTS].append(ep)
            known.add(ep.key)


# --------------------------------------------------------------------------- decoding


def field_of(exc: msgspec.ValidationError) -> str | None:
    """The field an error is about: its path, and the unknown or missing field it names."""
    text = str(exc)
    m = re.search(r"at `\$\.?([^`]*)`", text)
    where = m.group(1).replace("[", ".").replace("]", "") if m else ""
    named = re.match(r"Object (?:contains unknown|missing required) field `([^`]+)`", text)
    if named is not None:
        where = f"{where}.{named.group(1)}" if where else named.group(1)
    return where or None


def _invalid(exc: msgspec.ValidationError, where: str) -> ApiError:
    message = str(exc).split(" - at `", 1)[0]
    fld = field_of(exc)
    return Unprocessable(f"{where} {fld or ''}: {message}".replace("  ", " ").strip(), field=fld)


def _check_strings(values: Iterable[tuple[str, str]], where: str) -> None:
    for name, value in values:
        if len(value) > 4096:
            raise ApiError(f"{where} parameter {name}: longer than 4096 characters", field=name)
        problem = text_problem(value)
        if problem is not None:
            raise ApiError(f"{where} parameter {name}: {problem}", field=name)


def decode_path(
    match_info: dict[str, str] | Any, model: Any, time_fields: frozenset[str] = frozenset()
) -> Any:
    data = dict(match_info)
    _check_strings(data.items(), "path")
    _refuse_numeric_times(data, time_fields, "path")
    try:
        return msgspec.convert(data, model, strict=False)
    except msgspec.ValidationError as exc:
        # A path that names no valid record is a 404, as for any unknown URL.
        raise ApiError(
            str(_invalid(exc, "path")), code="not_found", status=404, field=field_of(exc)
        ) from None


def decode_query(
    query: Any,
    model: Any,
    list_fields: frozenset[str],
    time_fields: frozenset[str] = frozenset(),
) -> Any:
    data: dict[str, Any] = {}
    for name in set(query.keys()):
        values = query.getall(name)
        _check_strings(((name, v) for v in values), "query")
        if name in list_fields:
            data[name] = [p for v in values for p in v.split(",") if p != ""]
        elif len(values) > 1:
            raise ApiError(f"query parameter {name}: given {len(values)} times", field=name)
        else:
            data[name] = values[0]
    _refuse_numeric_times(data, time_fields, "query")
    try:
        return msgspec.convert(data, model, strict=False)
    except msgspec.ValidationError as exc:
        raise _invalid(exc, "query") from None


def decode_json(raw: bytes, model: Any) -> Any:
    if not raw.strip():
        raise ApiError("the request needs a JSON body", code="bad_request")
    if b"\\u0000" in raw or b"\x00" in raw:
        raise ApiError(
            "the body contains a NUL character, which text may not hold", code="invalid_json"
        )
    problem = check_depth(raw, MAX_DEPTH)
    if problem is not None:
        raise ApiError(f"the body is {problem}", code="too_deep")
    try:
        return msgspec.json.decode(raw, type=model)
    except msgspec.ValidationError as exc:
        raise _invalid(exc, "body") from None
    except msgspec.DecodeError as exc:
        raise ApiError(f"the body is not valid JSON: {exc}", code="invalid_json") from None
    except UnicodeDecodeError as exc:
        # msgspec checks UTF-8 only when it decodes a string into str
        raise ApiError(
            f"the body is not valid UTF-8 (byte {exc.start})", code="invalid_json"
        ) from None


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(f"the body is larger than {limit} bytes", code="too_large", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise ApiError(f"the body is larger than {limit} bytes", code="too_large", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


async def decode_body(request: web.Request, ep: Endpoint) -> Any:
    raw = await _read_body(request, ep.max_body_bytes)
    ctype = request.content_type
    if isinstance(ep.body_model, RawBody):
        if ctype not in ep.body_model.content_types:
            raise ApiError(
                f"Content-Type must be one of {', '.join(ep.body_model.content_types)}",
                code="unsupported_media_type",
                status=415,
            )
        return raw
    json_type = ctype in ("application/json", "") or ctype.endswith("+json")
    if raw.strip() and not json_type:
        raise ApiError(
            "Content-Type must be application/json", code="unsupported_media_type", status=415
        )
    return decode_json(raw, ep.body_model)


# --------------------------------------------------------------------------- encoding


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_JSON_ENCODER.encode(data),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def encode_json(data: Any) -> bytes:
    return _JSON_ENCODER.encode(data)


def _render(ep: Endpoint, result: Any) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if isinstance(result, Reply):
        status = result.status or ep.status
        if status == 204:
            return web.Response(status=204, headers=result.headers)
        return json_response(result.data, status, result.headers)
    if ep.status == 204 or (result is None and ep.response_model is None):
        return web.Response(status=204 if ep.status in (200, 204) else ep.status)
    return json_response(result, ep.status)


def _wrap(ep: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    wants = set(inspect.signature(ep.handler).parameters)

    async def handle(request: web.Request) -> web.StreamResponse:
        principal: Principal | None = None
        if not ep.access.is_public:
            principal = await request.app[AUTHENTICATE](request)
            if principal.role not in ep.access.roles:
                raise Forbidden(f"the {principal.role} role may not {_verb(ep)}")
        req = Req(request, principal)
        kwargs: dict[str, Any] = {}
        path = None
        if ep.path_model is not None:
            path = decode_path(request.match_info, ep.path_model, ep.time_fields)
            kwargs["path"] = path
        if ep.query_model is not None:
            kwargs["query"] = decode_query(
                request.query, ep.query_model, ep.list_fields, ep.time_fields
            )
        if ep.access.scope is not None:
            await ep.access.scope(req, path)
        if ep.body_model is not None:
            kwargs["body"] = await decode_body(request, ep)
        if "req" in wants:
            kwargs["req"] = req
        return _render(ep, await ep.handler(**kwargs))

    handle.__name__ = ep.handler.__name__
    setattr(handle, "__fieldmesh_endpoint__", ep)  # noqa: B010  # read by undeclared_routes
    return handle


def _verb(ep: Endpoint) -> str:
    return f"{ep.method} {ep.path}"


def endpoint_of(handler: Any) -> Endpoint | None:
    return getattr(handler, "__fieldmesh_endpoint__", None)


def undeclared_routes(app: web.Application) -> list[str]:
    """Routes mounted without an Endpoint declaration (deny-by-default check)."""
    out = []
    for route in app.router.routes():
        if route.method == "HEAD" or (route.method == "*" and route.resource is None):
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        if "directory" in info:  # static files: no data behind them
            continue
        if endpoint_of(route.handler) is None:
            name = route.resource.canonical if route.resource is not None else "?"
            out.append(f"{route.method} {name}")
    return sorted(out)
