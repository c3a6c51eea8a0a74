"""The console's logic without a stack: names, checks, statuses, words, sign-in and CSRF.

The app is exercised in-process (Starlette's TestClient) for everything decided before the
store is touched; tests/test_console_browser.py runs it for real, in Chromium.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from console import auth, uploads
from console.app import SESSION_COOKIE, create_app
from console.contract_words import contract_words
from console.files import RawFile, SharedReading, file_state, status_of
from console.i18n import LANGUAGES, MESSAGES, pick_language, translator
from console.prefect_runs import FlowRun
from ivi.settings import Settings
from processing.contract import load_contract

MAX = 1000
CONTRACTS = ["clientes", "vendas"]


# --- names and checks ---------------------------------------------------------------------
@pytest.mark.parametrize(("given", "expected"), [
    ("nov.csv", "nov.csv"),
    ("../../etc/passwd.csv", "passwd.csv"),
    ("..\\..\\windows\\x.csv", "x.csv"),
    ("a\x00b\x1b[31m\u202e.csv", "ab_31m.csv"),
    ("<script>alert(1)</script>.csv", "script_.csv"),
    ("<img src=x onerror=alert(1)>.csv", "img src_x onerror_alert(1)_.csv"),
    ("  .hidden.csv", "hidden.csv"),
    ("_reports.csv", "reports.csv"),
    ("Preço Unitário 2026.CSV", "Preço Unitário 2026.CSV"),
])
def test_names_are_sanitised(given: str, expected: str) -> None:
    assert uploads.sanitise_name(given) == expected


def test_a_long_name_is_cut_keeping_its_extension() -> None:
    name = uploads.sanitise_name("a" * 500 + ".csv.gz")
    assert len(name) == uploads.MAX_NAME_BYTES and name.endswith(".csv.gz")


@pytest.mark.parametrize("letter", ["é", "東", "𝔸"])  # two, three and four bytes of UTF-8
def test_a_long_name_in_any_script_is_cut_to_a_key_the_store_takes(letter: str) -> None:
    from objectstore.output_names import fits

    name = uploads.sanitise_name(letter * 200 + ".csv")
    assert name.endswith(".csv") and set(name.removesuffix(".csv")) == {letter}
    assert uploads.MAX_NAME_BYTES - len(letter.encode()) < len(name.encode()) <= uploads.MAX_NAME_BYTES
    assert fits(uploads.upload_key("vendas", letter * 200 + ".csv"), prefix_bytes=0, suffix_bytes=0)


def test_keys_are_under_the_contract_and_end_in_csv() -> None:
    assert uploads.upload_key("vendas", "../nov.CSV.GZ") == "vendas/nov.csv"
    assert uploads.upload_key("vendas", "dez.csv") == "vendas/dez.csv"


@pytest.mark.parametrize(("name", "size", "contract", "refusal"), [
    ("a.csv", 10, "vendas", None),
    ("a.csv.gz", 10, "clientes", None),
    ("a.csv", 10, "nope", "error.unknown_contract"),
    ("a.csv", 10, "../vendas", "error.unknown_contract"),
    ("a.txt", 10, "vendas", "error.not_csv"),
    ("a.csv.zip", 10, "vendas", "error.not_csv"),
    ("a.xlsx", 10, "vendas", "error.not_csv"),
    ("<>.csv", 10, "vendas", "error.bad_name"),
    ("a.csv", MAX + 1, "vendas", "error.too_big"),
    ("a.csv", 0, "vendas", "error.empty"),
])
def test_uploads_are_checked(name: str, size: int, contract: str, refusal: str | None) -> None:
    found = uploads.check_upload(name, size, contract, CONTRACTS, MAX)
    assert (found.message if found else None) == refusal


def test_a_gz_file_must_be_gzip() -> None:
    assert uploads.check_content("a.csv.gz", b"id;x") is not None
    assert uploads.check_content("a.csv.gz", uploads.GZIP_MAGIC) is None
    assert uploads.check_content("a.csv", b"id;x") is None


# --- statuses -----------------------------------------------------------------------------
FILE = RawFile(key="vendas/nov.csv", etag="e2", size=10, uploaded_at=datetime(2026, 1, 1, tzinfo=UTC))


def run(state: str, etag: str | None = "e2") -> FlowRun:
    return FlowRun(id="r1", key=FILE.key, etag=etag, state_type=state,
                   start_time=datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC), end_time=None)


@pytest.mark.parametrize(("report", "flow_run", "status"), [
    (None, None, "queued"),
    (None, run("SCHEDULED"), "queued"),
    (None, run("PENDING"), "running"),
    (None, run("RUNNING"), "running"),
    (None, run("COMPLETED"), "running"),  # its report is on its way
    (None, run("FAILED"), "failed"),
    (None, run("CRASHED"), "failed"),
    (None, run("FAILED", etag="e1"), "queued"),  # a run of the version before
    ({"source_etag": "e2", "status": "processed"}, run("COMPLETED"), "processed"),
    ({"source_etag": "e2", "status": "rejected"}, run("FAILED"), "rejected"),
    ({"source_etag": "e1", "status": "processed"}, run("RUNNING"), "running"),  # an older version's report
    ({"source_etag": "e1", "status": "processed"}, None, "queued"),
])
def test_status_from_the_report_and_the_latest_run(report: dict | None, flow_run: FlowRun | None, status: str) -> None:
    assert status_of(FILE, report, flow_run) == status


def test_an_older_versions_report_is_not_shown_as_this_ones() -> None:
    state = file_state(FILE, {"source_etag": "e1", "status": "processed", "input_rows": 5, "duration_s": 1.0},
                       run("RUNNING"), now=datetime(2026, 1, 1, 0, 0, 4, tzinfo=UTC))
    assert state.report is None and state.count("input_rows") is None
    assert state.seconds == 3.0  # so far, from the run's start


def test_pages_polling_together_share_one_reading_until_it_is_forgotten() -> None:
    readings: list[int] = []
    shared = SharedReading(lambda: readings.append(len(readings)) or len(readings), seconds=60)
    assert [shared() for _ in range(5)] == [1] * 5
    shared.forget()
    assert shared() == 2 and readings == [0, 1]


# --- words --------------------------------------------------------------------------------
def test_every_message_has_both_languages_with_the_same_fields() -> None:
    for key, texts in MESSAGES.items():
        assert len(texts) == len(LANGUAGES) and all(texts), key
        fields = [sorted(re.findall(r"\{(\w+)\}", text)) for text in texts]
        assert fields[0] == fields[1], key


@pytest.mark.parametrize(("query", "session", "accept", "language"), [
    (None, None, None, "pt-BR"),
    (None, None, "en-US,en;q=0.9", "en"),
    (None, None, "pt-BR,en;q=0.8", "pt-BR"),
    (None, None, "fr-FR", "pt-BR"),
    (None, "en", "pt-BR", "en"),
    ("pt-BR", "en", "en", "pt-BR"),
    ("xx", None, None, "pt-BR"),
])
def test_the_language_is_portuguese_unless_asked(query: str | None, session: str | None, accept: str | None, language: str) -> None:
    assert pick_language(query, session, accept) == language


def test_a_contract_in_plain_words() -> None:
    words = {c.name: c for c in contract_words(load_contract("vendas"), translator("pt-BR"))}
    assert words["quantidade"].type == "número inteiro"
    assert words["quantidade"].rules == ["obrigatória", "no mínimo 1"]
    assert "um de: AC, AL" in words["uf"].rules[1]
    english = {c.name: c for c in contract_words(load_contract("vendas"), translator("en"))}
    assert english["id_venda"].rules == ["required", "no repeats within the file"]
    assert any(rule.startswith("personal data") for rule in english["cliente"].rules)


# --- sign-in, CSRF, refusals before the store (in-process app, no store behind it) ----------
@pytest.fixture
def settings() -> Settings:
    return Settings(
        _env_file=None, s3_port=1, prefect_port=1,  # nothing listens there: the store is never reached
        s3_secret_key=SecretStr("s3-secret-not-shown"), console_password=SecretStr("right-password"),
        console_token=SecretStr("script-token"), console_session_secret=SecretStr("x" * 32),
        console_max_upload_bytes=MAX,
        contracts_prefix="",  # the image's contracts only (published ones: test_contract_publish.py)
    )  # type: ignore[call-arg]


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match
    return match.group(1)


def signed_in(client: TestClient) -> str:
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"user": "ivi", "password": "right-password", "csrf": token},
                           follow_redirects=False)
    assert response.status_code == 303
    return csrf_of(client.get("/contracts").text)


def test_every_page_needs_a_sign_in(client: TestClient) -> None:
    for path in ("/", "/files", "/contracts", "/file?key=vendas/a.csv"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next="), path
    assert client.get("/files/table").status_code == 401
    assert client.post("/upload", files={"file": ("a.csv", b"x")}).status_code == 401
    assert client.post("/file/replay", data={"key": "vendas/a.csv"}).status_code == 401
    assert client.get("/healthz").json() == {"status": "ok"}


def test_sign_in_needs_the_right_password_and_the_forms_token(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    wrong = client.post("/login", data={"user": "ivi", "password": "wrong", "csrf": token})
    assert wrong.status_code == 401 and "Usuário ou senha incorretos." in wrong.text
    forged = client.post("/login", data={"user": "ivi", "password": "right-password", "csrf": "forged"})
    assert forged.status_code == 403
    assert client.get("/contracts", follow_redirects=False).status_code == 303


def test_guessing_the_password_is_throttled_per_client(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    for _ in range(5):
        assert client.post("/login", data={"user": "ivi", "password": "guess", "csrf": token}).status_code == 401
    right = client.post("/login", data={"user": "ivi", "password": "right-password", "csrf": token},
                        follow_redirects=False)
    assert right.status_code == 429 and "Muitas tentativas erradas" in right.text
    assert client.get("/contracts", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_signed_httponly_and_samesite_strict(client: TestClient) -> None:
    header = client.get("/login").headers.get("set-cookie", "")
    signed_in(client)
    cookie = next(c for c in client.cookies.jar if c.name == SESSION_COOKIE)
    assert "samesite=strict" in header.lower() and "httponly" in header.lower()
    tampered = TestClient(client.app)
    tampered.cookies.set(SESSION_COOKIE, cookie.value[:-2] + "xx")
    assert tampered.get("/contracts", follow_redirects=False).status_code == 303


def test_a_session_rotates_its_csrf_token_on_sign_in(client: TestClient) -> None:
    before = csrf_of(client.get("/login").text)
    after = signed_in(client)
    assert before != after


def test_writes_without_the_csrf_token_are_refused(client: TestClient) -> None:
    signed_in(client)
    assert client.post("/upload", data={"contract": "vendas"}, files={"file": ("a.csv", b"id\n1\n")}).status_code == 403
    assert client.post("/file/replay", data={"key": "vendas/a.csv"}).status_code == 403
    assert client.post("/file/replay", data={"key": "vendas/a.csv", "csrf": "forged"}).status_code == 403
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 403


def test_the_server_refuses_what_the_page_would_have(client: TestClient) -> None:
    csrf = signed_in(client)
    headers = {"X-CSRF-Token": csrf}

    def send(name: str, data: bytes, contract: str = "vendas") -> tuple[int, str]:
        response = client.post("/upload", headers=headers, data={"contract": contract}, files={"file": (name, data)})
        return response.status_code, response.json()["error"]

    assert send("a.txt", b"id\n") == (400, "a.txt: só arquivos .csv ou .csv.gz são aceitos.")
    assert send("a.csv", b"id\n", contract="../x") == (400, "Contrato desconhecido: ../x.")
    assert send("a.csv", b"x" * (MAX + 1)) == (413, "a.csv: 1001 B passa do máximo de 1000 B.")
    assert send("a.csv.gz", b"id\n1\n") == (400, "a.csv.gz: termina em .gz mas não é gzip.")
    too_big = client.post("/upload", headers=headers, data={"contract": "vendas"},
                          files={"file": ("a.csv", b"x" * (MAX + 100_000))})
    assert too_big.status_code == 413  # from Content-Length, before the body is read


def test_a_bearer_token_reads_without_a_cookie_and_a_wrong_one_does_not(client: TestClient) -> None:
    assert client.get("/contracts", headers={"Authorization": "Bearer script-token"}).status_code == 200
    assert client.get("/contracts", headers={"Authorization": "Bearer nope"}, follow_redirects=False).status_code == 303


def test_pages_carry_a_strict_content_security_policy_and_show_no_secret(client: TestClient, settings: Settings) -> None:
    signed_in(client)
    response = client.get("/contracts")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    for secret in (settings.s3_secret_key, settings.console_password, settings.console_token,
                   settings.console_session_secret):
        assert secret.get_secret_value() not in response.text


@pytest.mark.parametrize(("target", "expected"), [
    ("/file?key=a", "/file?key=a"), ("//evil.example/x", "/files"), ("https://evil.example", "/files"),
    ("/\\evil.example", "/files"), (None, "/files"),
])
def test_after_sign_in_only_this_sites_paths(target: str | None, expected: str) -> None:
    assert auth.safe_next(target) == expected


def test_ivi_status_names_the_console_and_who_signs_in_but_no_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ivi import stack as ivi_stack
    from tests.stack_support import isolated_settings

    settings = isolated_settings(tmp_path)
    ivi_stack.status(settings=settings)
    printed = capsys.readouterr().out
    assert f"console          {settings.console_url}  (sign in as ivi," in printed
    assert settings.console_password.get_secret_value() not in printed
    ivi_stack.status(as_json=True, settings=settings)
    assert json.loads(capsys.readouterr().out)["console_url"] == settings.console_url
