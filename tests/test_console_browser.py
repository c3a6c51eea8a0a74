"""The console in a real browser (headless Chromium from Debian, driven by Selenium) against
the embedded stack: sign-in and refusal, uploads through the page, rejected files, a
quarantine download, a replay, and everything from files escaped.

Every wait polls a condition with a deadline (tests/browser_support.py `poll`).
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from ivi.settings import Settings
from objectstore.store import OutputKeys, find_object
from tests.browser_support import chromium, poll, sign_in
from tests.pipeline_support import read_object, s3, upload, wait_for_report

pytestmark = pytest.mark.services

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
HEADER = "id_venda;data_venda;cliente;produto;categoria;quantidade;preco_unitario;valor_total;uf"
PIPELINE_SECONDS = 90.0


@pytest.fixture(scope="module")
def downloads() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ivi-downloads-") as directory:
        yield Path(directory)


@pytest.fixture(scope="module")
def browser(stack: Settings, downloads: Path) -> Iterator[WebDriver]:
    """One Chromium for the module, signed in."""
    with chromium(downloads=downloads) as driver:
        sign_in(driver, stack.console_url, stack.console_user, stack.console_password.get_secret_value())
        poll(lambda: driver.current_url.endswith("/files"), timeout=10, what="the files page after sign-in")
        yield driver


def write_file(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def upload_through_page(driver: WebDriver, settings: Settings, contract: str, *paths: Path) -> None:
    driver.get(f"{settings.console_url}/files")
    Select(driver.find_element(By.ID, "contract")).select_by_value(contract)
    driver.find_element(By.ID, "file-input").send_keys("\n".join(str(p) for p in paths))
    driver.find_element(By.ID, "upload-submit").click()


def row_status(driver: WebDriver, key: str) -> str | None:
    """The file's status in the list, read in one script: the page re-renders the list as it
    polls, and an element found before a re-render is stale after it."""
    status = driver.execute_script(
        "const row = [...document.querySelectorAll('#files-table tr[data-key]')]"
        ".find(r => r.dataset.key === arguments[0]); return row ? row.dataset.status : null",
        key,
    )
    return None if status is None else str(status)


def file_link_texts(driver: WebDriver) -> list[str]:
    """The list's file links as shown, read in one script (see row_status)."""
    return list(driver.execute_script("return [...document.querySelectorAll('a.file-link')].map(a => a.innerText)"))


def open_file_page(driver: WebDriver, settings: Settings, key: str, status: str) -> None:
    """The file's page, reloaded until it shows `status`."""
    def shows() -> bool:
        driver.get(f"{settings.console_url}/file?key={quote(key, safe='')}")
        return driver.find_element(By.ID, "file-status").get_attribute("data-status") == status
    poll(shows, timeout=PIPELINE_SECONDS, what=f"{key} {status} on its page", interval=0.5)


# --- sign-in ------------------------------------------------------------------------------
def test_nothing_is_shown_or_accepted_without_signing_in_and_a_wrong_password_is_refused(stack: Settings) -> None:
    url = stack.console_url
    for path in ("/files", "/files/table", "/contracts", "/file?key=vendas/x.csv"):
        response = httpx.get(f"{url}{path}", follow_redirects=False)
        assert response.status_code in (303, 401), path
        assert response.status_code == 401 or response.headers["location"].startswith("/login")
    assert httpx.post(f"{url}/upload", files={"file": ("a.csv", b"x")}).status_code == 401
    assert httpx.post(f"{url}/file/replay", data={"key": "vendas/x.csv"}).status_code == 401
    with chromium() as driver:
        sign_in(driver, url, stack.console_user, "not-the-password")
        assert "/login" in driver.current_url
        assert driver.find_element(By.ID, "login-refused").text == "Usuário ou senha incorretos."
        assert not driver.find_elements(By.ID, "files-table")
        driver.get(f"{url}/files")
        assert "/login" in driver.current_url  # still signed out
        password = stack.console_password.get_secret_value()
        sign_in(driver, url, stack.console_user, password, path="/contracts")
        poll(lambda: driver.current_url.endswith("/contracts"), timeout=10, what="back where sign-in began")
        assert password not in driver.page_source
        assert "vendas" in driver.find_element(By.ID, "contract-vendas").text
        assert "no mínimo 1" in driver.find_element(By.ID, "contract-vendas").text  # quantidade, in words
        driver.find_element(By.ID, "lang-toggle").click()
        poll(lambda: driver.find_element(By.TAG_NAME, "h1").text == "Contracts", timeout=10, what="English")
        assert "at least 1" in driver.find_element(By.ID, "contract-vendas").text
        driver.get(f"{url}/files")
        assert driver.find_element(By.TAG_NAME, "h1").text == "Upload files"  # the choice is kept
        driver.find_element(By.ID, "signout").click()
        poll(lambda: "/login" in driver.current_url, timeout=10, what="signed out")
        driver.get(f"{url}/files")
        assert "/login" in driver.current_url


# --- uploads ------------------------------------------------------------------------------
def test_an_upload_through_the_page_goes_from_queued_to_processed(
    stack: Settings, browser: WebDriver, tmp_path: Path
) -> None:
    lines = [HEADER] + [f"{i};2024-01-05;Ana;Caneta;Papelaria;2;1,50;3,00;SP" for i in range(1, 41)]
    path = write_file(tmp_path, "vendas ok.csv", "\n".join(lines) + "\n")
    key = "vendas/vendas ok.csv"
    upload_through_page(browser, stack, "vendas", path)
    poll(lambda: browser.find_elements(By.CSS_SELECTOR, "#upload-list .upload-item.done"),
         timeout=30, what="the upload's progress reaching done")
    assert browser.find_element(By.CSS_SELECTOR, "#upload-list progress").get_attribute("value") == "100"
    seen: list[str] = []

    def processed() -> bool:
        status = row_status(browser, key)
        if status and (not seen or seen[-1] != status):
            seen.append(status)
        return status == "processed"

    poll(processed, timeout=PIPELINE_SECONDS, what=f"{key} processed in the live table", interval=0.2)
    order = ["queued", "running", "processed"]
    assert seen[0] in ("queued", "running") and seen == sorted(seen, key=order.index), seen
    report = wait_for_report(stack, key)
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#files-table tr[data-key]")
               if r.get_attribute("data-key") == key)
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    assert cells[4:8] == ["40", "40", "0", "0"] == [str(report[n]) for n in
                                                  ("input_rows", "exported_rows", "quarantined_rows", "duplicate_rows")]
    run_link = row.find_element(By.CSS_SELECTOR, "a.run-link").get_attribute("href")
    assert run_link == f"{stack.prefect_ui_url}/runs/flow-run/{report['flow_run_id']}"


DROP_FILE = """
const [name, text] = arguments;
const transfer = new DataTransfer();
transfer.items.add(new File([text], name, {type: "text/csv"}));
document.getElementById("dropzone").dispatchEvent(
  new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
"""


def test_a_file_dropped_on_the_page_is_uploaded_under_the_chosen_contract(stack: Settings, browser: WebDriver) -> None:
    browser.get(f"{stack.console_url}/files")
    Select(browser.find_element(By.ID, "contract")).select_by_value("clientes")
    text = (SAMPLES / "mock.csv").read_text(encoding="utf-8")
    browser.execute_script(DROP_FILE, "arrastado.csv", text)
    poll(lambda: browser.find_elements(By.CSS_SELECTOR, "#upload-list .upload-item.done"), timeout=30,
         what="the dropped file uploaded")
    assert read_object(stack, stack.raw_bucket, "clientes/arrastado.csv").decode("utf-8") == text


def test_files_the_page_refuses_are_never_uploaded(stack: Settings, browser: WebDriver, tmp_path: Path) -> None:
    text = write_file(tmp_path, "notas.txt", "not a csv\n")
    empty = write_file(tmp_path, "vazio.csv", "")
    upload_through_page(browser, stack, "vendas", text, empty)
    messages = poll(lambda: [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#upload-list .refused")]
                    if len(browser.find_elements(By.CSS_SELECTOR, "#upload-list .refused")) == 2 else None,
                    timeout=10, what="two refusals")
    assert any("notas.txt: só arquivos .csv ou .csv.gz são aceitos." in m for m in messages), messages
    assert any("vazio.csv: o arquivo está vazio." in m for m in messages), messages
    # over the maximum: the page's limit lowered to 10 bytes stands for a big file
    browser.execute_script("document.getElementById('upload-form').dataset.maxBytes = '10'")
    Select(browser.find_element(By.ID, "contract")).select_by_value("vendas")
    big = write_file(tmp_path, "grande.csv", HEADER + "\n")
    browser.find_element(By.ID, "file-input").send_keys(str(big))
    browser.find_element(By.ID, "upload-submit").click()
    poll(lambda: any("grande.csv" in e.text and "passa do máximo" in e.text
                     for e in browser.find_elements(By.CSS_SELECTOR, "#upload-list .refused")),
         timeout=10, what="the size refusal")
    client = s3(stack)
    for name in ("vendas/notas.txt", "vendas/notas.csv", "vendas/vazio.csv", "vendas/grande.csv"):
        assert find_object(client, stack.raw_bucket, name) is None, name


def test_a_file_that_cannot_be_read_with_its_contract_is_shown_rejected_with_why(
    stack: Settings, browser: WebDriver, tmp_path: Path
) -> None:
    path = write_file(tmp_path, "errado.csv", "nome;valor\nAna;1\n")
    upload_through_page(browser, stack, "clientes", path)
    key = "clientes/errado.csv"
    poll(lambda: row_status(browser, key) == "rejected", timeout=PIPELINE_SECONDS, what=f"{key} rejected")
    open_file_page(browser, stack, key, "rejected")
    report = wait_for_report(stack, key)
    assert browser.find_element(By.ID, "reject-reason").text == report["reason"]
    link = browser.find_element(By.ID, "download-original").get_attribute("href")
    assert httpx.get(link).content == b"nome;valor\nAna;1\n"


# --- quarantine: what failed, the download, the replay -------------------------------------
def test_quarantined_rows_are_shown_downloaded_and_sent_again(
    stack: Settings, browser: WebDriver, downloads: Path, tmp_path: Path
) -> None:
    lines = [HEADER, "1;2024-01-05;Ana;P;C;1;1;1;SP", "2;2024-01-05;Bia;P;C;1;1;1;XX",
             "3;2024-01-05;Caio;P;C;0;1;0;RJ"]
    path = write_file(tmp_path, "quarentena.csv", "\n".join(lines) + "\n")
    key = "vendas/quarentena.csv"
    upload_through_page(browser, stack, "vendas", path)
    open_file_page(browser, stack, key, "processed")
    counts = [browser.find_element(By.ID, f"count-{n}").text for n in ("input", "exported", "quarantined", "duplicates")]
    assert counts == ["3", "1", "2", "0"]
    failures = [tuple(td.text for td in tr.find_elements(By.TAG_NAME, "td"))
                for tr in browser.find_elements(By.CSS_SELECTOR, "#failures tbody tr")]
    assert ("uf", "allowed", "1") in failures and ("quantidade", "min", "1") in failures
    rejected = browser.find_element(By.ID, "rejected-rows").text
    assert "uf: not a Brazilian state code ('XX')" in rejected and "quantidade: below the minimum 1" in rejected

    # the rejected rows, downloaded by the browser from its pre-signed link
    link = browser.find_element(By.ID, "download-rejected")
    assert "X-Amz-Signature=" in link.get_attribute("href") and "X-Amz-Expires=300" in link.get_attribute("href")
    link.click()
    saved = poll(lambda: [p for p in downloads.glob("quarentena.rejected*.csv")], timeout=30,
                 what="the rejected rows downloaded")
    expected = read_object(stack, stack.quarantine_bucket, OutputKeys.for_key(key).rejected)
    assert saved[0].read_bytes() == expected
    unsigned = link.get_attribute("href").split("?", 1)[0]
    assert httpx.get(unsigned).status_code == 403  # only the signed link opens it

    # send them again: a new raw object with the two rows, processed like any upload
    browser.find_element(By.ID, "replay").click()
    flash = poll(lambda: browser.find_element(By.ID, "flash").text, timeout=30, what="the replay's answer")
    assert flash.startswith("Reenviado como vendas/quarentena.replay-"), flash
    replay_key = flash.removeprefix("Reenviado como ").removesuffix(".")
    report = wait_for_report(stack, replay_key, timeout=PIPELINE_SECONDS)
    assert (report["input_rows"], report["quarantined_rows"]) == (2, 2)  # the contract is unchanged
    open_file_page(browser, stack, key, "processed")
    browser.find_element(By.ID, "replay").click()
    again = poll(lambda: browser.find_element(By.ID, "flash").text, timeout=30, what="the second answer")
    assert again.startswith("Não reenviado:") and "already replayed" in again, again


# --- escaping -----------------------------------------------------------------------------
def test_names_headers_and_values_from_files_are_shown_as_text_never_run(
    stack: Settings, browser: WebDriver, tmp_path: Path
) -> None:
    key = "vendas/<script>document.title='name'</script>.csv"
    header = HEADER + ";<script>document.title='header'</script>"
    value = "<script>document.title='value'</script>"
    data = "\n".join([header, "1;2024-01-05;Ana;P;C;1;1;1;SP;x", f"2;2024-01-05;Bia;P;C;1;1;1;{value};y", ""])
    etag = upload(stack, key, data.encode())
    wait_for_report(stack, key, etag, timeout=PIPELINE_SECONDS)
    # and a file chosen in the page whose own name is markup
    markup_name = write_file(tmp_path, "<img src=x onerror=alert(1)>.csv", HEADER + "\n1;2024-01-05;A;P;C;1;1;1;SP\n")
    upload_through_page(browser, stack, "vendas", markup_name)
    poll(lambda: browser.find_elements(By.CSS_SELECTOR, "#upload-list .upload-item.done"), timeout=30,
         what="the markup-named upload")
    assert browser.find_element(By.CSS_SELECTOR, "#upload-list .upload-item .name").text == markup_name.name
    poll(lambda: row_status(browser, key) is not None, timeout=30, what="the script-named file listed")
    assert key in file_link_texts(browser)

    open_file_page(browser, stack, key, "processed")
    assert browser.find_element(By.ID, "file-key").text == key
    assert "<script>document.title='header'</script>" in browser.find_element(By.ID, "ignored-columns").text
    assert value in browser.find_element(By.ID, "rejected-rows").text
    assert browser.title == "Console IVI"
    scripts = browser.execute_script("return Array.from(document.scripts).map(s => s.src)")
    assert scripts == [f"{stack.console_url}/static/console.js"]
    assert not browser.find_elements(By.CSS_SELECTOR, "main img")
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018
    assert io.BytesIO(read_object(stack, stack.raw_bucket, key)).read().decode() == data
