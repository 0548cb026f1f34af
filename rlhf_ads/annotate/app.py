"""The web app designers label in (FastAPI). Every route but the sign-in page needs a designer's token, as the
cookie sign-in sets or an `Authorization: Bearer` header; an unknown or revoked token gets 401. Request bodies are
validated and capped at MAX_BODY_BYTES; pages carry a nonce-based Content-Security-Policy.

    GET  /               sign-in page            POST /signin    token -> cookie
    GET  /label          the next pair           POST /label     a label from the page's form
    GET  /api/next       the next pair as JSON   POST /api/labels  a label as JSON (idempotent by request_id)
    GET  /api/progress   the designer's progress POST /signout
"""

from __future__ import annotations

import secrets
from typing import Literal
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from rlhf_ads.annotate import page
from rlhf_ads.annotate.queue import next_assignment, progress
from rlhf_ads.annotate.store import Designer, LabelConflict, Store, UnknownAssignment

COOKIE = "rlhf_ads_token"
MAX_BODY_BYTES = 16 * 1024
ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store"}
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"


class LabelIn(BaseModel):
    """One label: the assignment the page or /api/next gave, the choice (a: A better, b: B better), an optional
    reason, and a client request id that makes resubmitting the same request harmless."""

    model_config = {"extra": "forbid"}
    assignment_id: str = Field(pattern=ID_PATTERN)
    choice: Literal["a", "b", "tie", "unusable"]
    reason: str = Field(default="", max_length=page.MAX_REASON_CHARS)
    request_id: str = Field(pattern=ID_PATTERN)


class Unauthorized(Exception):
    pass


class BodyLimit:
    """ASGI middleware: 413 for a request body over `max_bytes`, declared or streamed."""

    class TooLarge(Exception):
        pass

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._refuse(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise self.TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except self.TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope, receive, send):
        await JSONResponse({"detail": f"request body over {self.max_bytes} bytes"}, 413)(scope, receive, send)


def _nonce() -> str:
    return secrets.token_urlsafe(16)


def _html(text: str, nonce: str, status: int = 200) -> HTMLResponse:
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; form-action 'self'; "
           "frame-ancestors 'none'; base-uri 'none'")
    return HTMLResponse(text, status, headers={"Content-Security-Policy": csp})


def _page(status: int, title: str, message: str, link=("/label", "Back to labelling")) -> HTMLResponse:
    nonce = _nonce()
    return _html(page.message_page(nonce, title, message, link), nonce, status)


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.cookies.get(COOKIE)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body as {name: first value} (bodies are capped by BodyLimit)."""
    fields = parse_qs((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def create_app(store: Store, overlap: int = 1, goal: int | None = None, rng=None) -> FastAPI:
    """The app over one annotation database: each pair goes to `overlap` designers; `goal` labels per designer
    (default: an equal share); `rng` draws the left/right order (default: the system's randomness)."""
    app = FastAPI(title="rlhf-ads annotate", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
        return response

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, exc: Unauthorized):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "unknown or revoked token"}, 401, headers={"WWW-Authenticate": "Bearer"})
        return _page(401, "Sign in first", "Your token is missing, unknown or revoked.", ("/", "Sign in"))

    def designer(request: Request) -> Designer:
        found = store.designer_for_token(_token(request))
        if found is None:
            raise Unauthorized
        return found

    def submit(who: Designer, label: LabelIn):
        return store.submit(who, label.assignment_id, label.choice, label.reason.strip(), label.request_id)

    @app.get("/", response_class=HTMLResponse)
    def signin_page(request: Request):
        if store.designer_for_token(request.cookies.get(COOKIE)) is not None:
            return RedirectResponse("/label", 303)
        nonce = _nonce()
        return _html(page.signin_page(nonce), nonce)

    @app.post("/signin")
    async def signin(request: Request):
        token = (await _form(request)).get("token", "").strip()
        if await run_in_threadpool(store.designer_for_token, token) is None:
            nonce = _nonce()
            return _html(page.signin_page(nonce, "Unknown or revoked token."), nonce, 401)
        response = RedirectResponse("/label", 303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=7 * 24 * 3600)
        return response

    @app.post("/signout")
    def signout(who: Designer = Depends(designer)):
        response = RedirectResponse("/", 303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/label", response_class=HTMLResponse)
    def label_page(who: Designer = Depends(designer)):
        shown = next_assignment(store, who, overlap, rng)
        nonce = _nonce()
        return _html(page.label_page(nonce, who.name, shown, progress(store, who, overlap, goal), secrets.token_hex(16)),
                     nonce)

    @app.post("/label")
    async def label_form(request: Request, who: Designer = Depends(designer)):
        try:
            label = LabelIn(**await _form(request))
        except (ValidationError, TypeError) as exc:
            return _page(422, "Not a label", f"The form was not a label: {_first_error(exc)}")
        try:
            await run_in_threadpool(submit, who, label)
        except LabelConflict as exc:
            return _page(409, "Already labelled", str(exc))
        except UnknownAssignment as exc:
            return _page(404, "Unknown pair", str(exc))
        return RedirectResponse("/label", 303)

    @app.get("/api/next")
    def api_next(who: Designer = Depends(designer)):
        shown = next_assignment(store, who, overlap, rng)
        done = progress(store, who, overlap, goal).as_dict()
        if shown is None:
            return {"done": True, "progress": done}
        return {"done": False, "assignment_id": shown.id, "request_id": secrets.token_hex(16),
                "brief": page.brief_view(shown.left.brief), "a": page.ad_view(shown.left),
                "b": page.ad_view(shown.right), "progress": done}

    @app.post("/api/labels")
    def api_label(label: LabelIn, who: Designer = Depends(designer)):
        try:
            stored, duplicate = submit(who, label)
        except LabelConflict as exc:
            return JSONResponse({"detail": str(exc)}, 409)
        except UnknownAssignment as exc:
            return JSONResponse({"detail": str(exc)}, 404)
        return {"label_id": stored.id, "duplicate": duplicate, "choice": stored.choice,
                "progress": progress(store, who, overlap, goal).as_dict()}

    @app.get("/api/progress")
    def api_progress(who: Designer = Depends(designer)):
        return progress(store, who, overlap, goal).as_dict()

    return app


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
    return str(exc)

