"""The console's pages and endpoints (FastAPI, Jinja2 with autoescaping, a little plain JS).

    GET  /login, POST /login, POST /logout     sign-in (console/auth.py)
    GET  /files                                 upload form + recent files
    GET  /files/table                           the recent files alone (the page polls it)
    POST /upload                                one file, `contract` field, CSRF header
    GET  /file?key=...                          one file: counts, failures, quarantine, links
    POST /file/replay                           send its quarantined rows again
    GET  /contracts                             each contract in plain words
    GET  /healthz                               for `ivi up` and probes; says nothing else

Started by `ivi up` as `uvicorn --factory console.app:create_app`. Everything but /login and
/healthz needs a signed-in session or the bearer token (console/auth.py).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from minio.error import S3Error
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.middleware.sessions import SessionMiddleware
from urllib3.exceptions import HTTPError

from console import auth, files, uploads
from console.contracts import contract_names, known_contracts
from console.contract_words import contract_words
from console.i18n import LANGUAGES, pick_language, translator
from console.prefect_runs import latest_runs
from console.settings import ConsoleSettings
from objectstore.store import minio_client

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "ivi_console"
SESSION_SECONDS = 8 * 3600
FORM_OVERHEAD_BYTES = 64 * 1024
STATUS_CACHE_SECONDS = 1.5  # pages poll every 2 s  # multipart boundaries and the other fields of an upload
SECURITY_HEADERS = {
    # Scripts and styles from this site only: no inline script runs, whatever a file holds.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _templates() -> Jinja2Templates:
    environment = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
    return Jinja2Templates(env=environment)


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()
    app = FastAPI(title="IVI console", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.console_session_secret.get_secret_value() or secrets.token_urlsafe(32),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_SECONDS,
        same_site="strict",
        https_only=settings.console_https,
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = _templates()
    token = settings.console_token.get_secret_value()
    throttle = auth.SignInThrottle()
    secret_key = settings.s3_secret_key.get_secret_value()
    if not secret_key:
        raise SystemExit("the console needs IVI_S3_SECRET_KEY (in the environment or .env)")
    client = minio_client(settings.s3_endpoint, settings.s3_access_key, secret_key, settings.s3_region)
    # Signs links for the address a browser reaches the store at; with the region given it
    # signs without asking the store anything.
    signer = minio_client(settings.public_s3_url, settings.s3_access_key, secret_key, settings.s3_region)
    buckets = {"raw": settings.raw_bucket, "processed": settings.processed_bucket,
               "quarantine": settings.quarantine_bucket}

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def language(request: Request) -> str:
        chosen = request.query_params.get("lang")
        if chosen in LANGUAGES:
            request.session["lang"] = chosen
        return pick_language(chosen, request.session.get("lang"), request.headers.get("accept-language"))

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        lang = language(request)
        other = LANGUAGES[1 - LANGUAGES.index(lang)]
        query = dict(request.query_params)
        query["lang"] = other
        return templates.TemplateResponse(
            request, name,
            {
                "t": translator(lang), "lang": lang,
                "other_lang_url": f"{request.url.path}?{urlencode(query)}",
                "csrf": auth.csrf_token(request),
                "user": request.session.get("user"),
                "flash": request.session.pop("flash", None),
                **context,
            },
            status_code=status_code,
        )

    def user_of(request: Request) -> str:
        return auth.signed_in_user(request, token)

    @app.exception_handler(auth.NotSignedIn)
    async def not_signed_in(request: Request, _: Exception) -> Response:
        if request.method == "GET" and request.url.path != "/files/table":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return JSONResponse({"error": "sign in first"}, status_code=401)

    @app.exception_handler(auth.CsrfRefused)
    async def csrf_refused(request: Request, _: Exception) -> Response:
        message = translator(language(request))("csrf.refused")
        return JSONResponse({"error": message}, status_code=403)

    # --- sign-in ----------------------------------------------------------------------
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str | None = None) -> HTMLResponse:
        return render(request, "login.html", next=auth.safe_next(next), refused=False,
                      configured=bool(settings.console_password.get_secret_value()))

    @app.post("/login", response_class=HTMLResponse)
    def login(
        request: Request,
        user: str = Form(""), password: str = Form(""), csrf: str = Form(""), next: str = Form(""),
    ) -> Response:
        auth.check_csrf(request, token="", submitted=csrf)
        expected = settings.console_password.get_secret_value()
        client = request.client.host if request.client else ""
        if not throttle.allowed(client):
            return render(request, "login.html", status_code=429, next=auth.safe_next(next),
                          refused="login.throttled", configured=bool(expected))
        if not auth.credentials_ok(user, password, settings.console_user, expected):
            throttle.failed(client)
            return render(request, "login.html", status_code=401, next=auth.safe_next(next),
                          refused="login.refused", configured=bool(expected))
        auth.sign_in(request, user)
        return RedirectResponse(auth.safe_next(next), status_code=303)

    @app.post("/logout")
    def logout(request: Request, csrf: str = Form("")) -> Response:
        auth.check_csrf(request, token, csrf)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # --- files ------------------------------------------------------------------------
    def read_recent_states() -> list[files.FileState]:
        runs = latest_runs(settings.prefect_api_url, settings.prefect_api_key.get_secret_value())
        return [
            files.file_state(raw, files.report_of(client, settings.processed_bucket, raw.key), runs.get(raw.key))
            for raw in files.recent_raw_files(client, settings.raw_bucket)
        ]

    # Every open page polls the table; they share one reading of the store and Prefect.
    recent_states = files.SharedReading(read_recent_states, seconds=STATUS_CACHE_SECONDS)

    @app.get("/")
    def home(request: Request) -> Response:
        user_of(request)
        return RedirectResponse("/files", status_code=303)

    @app.get("/files", response_class=HTMLResponse)
    def files_page(request: Request) -> HTMLResponse:
        user_of(request)
        return render(
            request, "files.html", states=recent_states(), contracts=contract_names(client, settings),
            max_bytes=settings.console_max_upload_bytes,
            max_size=uploads.human_size(settings.console_max_upload_bytes),
            prefect_url=settings.public_prefect_url,
        )

    @app.get("/files/table", response_class=HTMLResponse)
    def files_table(request: Request) -> HTMLResponse:
        user_of(request)
        return render(request, "files_table.html", states=recent_states(),
                      prefect_url=settings.public_prefect_url)

    @app.post("/upload")
    async def upload(request: Request) -> JSONResponse:
        """One file per request (the page sends each with its own progress bar). Sign-in,
        CSRF and the declared size are checked before the body is read."""
        user_of(request)
        auth.check_csrf(request, token, None)
        t = translator(language(request))
        declared = request.headers.get("content-length")
        limit = settings.console_max_upload_bytes
        if declared is None or not declared.isdigit():
            return JSONResponse({"error": "Content-Length required"}, status_code=411)
        if int(declared) > limit + FORM_OVERHEAD_BYTES:
            return JSONResponse({"error": t("error.request_too_big", max=uploads.human_size(limit))},
                                status_code=413)
        form = await request.form(max_files=1, max_fields=4)
        try:
            contract = str(form.get("contract") or "")
            file = form.get("file")
            if not isinstance(file, UploadFile) or not file.filename:
                return JSONResponse({"error": t("error.bad_name", name="?")}, status_code=400)
            names = await run_in_threadpool(contract_names, client, settings)
            refusal = uploads.check_upload(file.filename, file.size, contract, names, limit)
            if refusal is None:
                first = await file.read(2)
                await file.seek(0)
                refusal = uploads.check_content(file.filename, first)
            if refusal is not None:
                status = 413 if refusal.message == "error.too_big" else 400
                return JSONResponse({"error": t(refusal.message, **refusal.fields)}, status_code=status)
            key = uploads.upload_key(contract, file.filename)
            try:
                await run_in_threadpool(
                    client.put_object, settings.raw_bucket, key, file.file, file.size or 0,
                    content_type="text/csv",
                )
            except (S3Error, HTTPError, OSError):
                return JSONResponse({"error": t("error.store")}, status_code=502)
            recent_states.forget()  # the page's next refresh shows the new file at once
            return JSONResponse({"key": key, "url": f"/file?key={quote(key, safe='')}"}, status_code=201)
        finally:
            await form.close()

    @app.get("/file", response_class=HTMLResponse)
    def file_page(request: Request, key: str = "") -> HTMLResponse:
        user_of(request)
        raw = files.raw_file(client, settings.raw_bucket, key) if key else None
        if raw is None:
            return render(request, "missing.html", status_code=404, key=key)
        report = files.report_of(client, settings.processed_bucket, key)
        run = latest_runs(settings.prefect_api_url, settings.prefect_api_key.get_secret_value()).get(key)
        state = files.file_state(raw, report, run)
        columns, rows = files.quarantine_preview(client, settings.quarantine_bucket, key)
        links = files.download_links(signer, client, buckets, key, settings.console_link_seconds)
        return render(
            request, "file.html", state=state, columns=columns, rows=rows, links=links,
            minutes=max(1, settings.console_link_seconds // 60), prefect_url=settings.public_prefect_url,
        )

    @app.post("/file/replay")
    def replay(request: Request, key: str = Form(""), csrf: str = Form("")) -> Response:
        """What `ivi replay KEY` does (flows/replay.py), then back to the file's page."""
        user_of(request)
        auth.check_csrf(request, token, csrf)
        from flows.replay import ReplayRefused, replay as replay_quarantine

        t = translator(language(request))
        try:
            result = replay_quarantine(key, settings, client=client)
            request.session["flash"] = ["ok", t("file.replayed", key=result.key)]
        except ReplayRefused as refusal:
            request.session["flash"] = ["error", t("file.replay_refused", reason=str(refusal))]
        except (S3Error, HTTPError, OSError):
            request.session["flash"] = ["error", t("error.store")]
        return RedirectResponse(f"/file?key={quote(key, safe='')}", status_code=303)

    # --- contracts --------------------------------------------------------------------
    @app.get("/contracts", response_class=HTMLResponse)
    def contracts_page(request: Request) -> HTMLResponse:
        user_of(request)
        t = translator(language(request))
        contracts = known_contracts(client, settings)
        return render(request, "contracts.html", contracts=[
            (contract, contract_words(contract, t)) for contract in contracts
        ])

    return app

