"""Screenshots of the web console for the README, taken from a running stack with the same
headless Chromium the browser tests use (Debian's `chromium` + `chromium-driver`).

    .venv/bin/python docs/screenshots.py              # the stack `ivi up` runs (.env)
    .venv/bin/python docs/screenshots.py --own-stack  # a fresh stack of its own, stopped after

It uploads a few files through the console's own page (a clean one, one with quarantined
rows, one its contract cannot read), waits for their reports, and saves
docs/images/console-*.png: sign-in, files, a file's page, contracts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from ivi.settings import Settings  # noqa: E402
from tests.browser_support import chromium, poll, sign_in  # noqa: E402

IMAGES = Path(__file__).resolve().parent / "images"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"
HEADER = "id_venda;data_venda;cliente;produto;categoria;quantidade;preco_unitario;valor_total;uf"
WAIT_SECONDS = 180.0


def _files(work: Path) -> dict[str, list[Path]]:
    """Files to upload, by contract."""
    def row(i: int, day: str = "", quantity: int = 0, state: str = "") -> str:
        quantity = quantity if quantity or day else 1 + i % 4
        total = f"{12.5 * quantity:.2f}".replace(".", ",")
        return (f"{i};{day or f'{1 + i % 28:02d}/11/2026'};Cliente {i};Caderno;Papelaria;{quantity};12,50;"
                f"{total};{state or ('SP', 'RJ', 'MG', 'BA')[i % 4]}")

    rows = [HEADER] + [row(i) for i in range(1, 201)]
    rows[17] = row(17, state="XX")  # not a state
    rows[42] = row(42, day="05/11/2026", quantity=0)  # below the minimum
    rows[88] = row(88, day="31/02/2026", quantity=1)  # no such date
    sales = work / "vendas-novembro.csv"
    sales.write_text("\n".join(rows) + "\n", encoding="utf-8")
    wrong = work / "planilha-errada.csv"
    wrong.write_text("nome;total\nAna;10\n", encoding="utf-8")
    return {"clientes": [SAMPLES / "mock.csv", wrong], "vendas": [sales]}


def _upload(driver: WebDriver, settings: Settings, contract: str, paths: list[Path]) -> None:
    driver.get(f"{settings.console_url}/files")
    Select(driver.find_element(By.ID, "contract")).select_by_value(contract)
    driver.find_element(By.ID, "file-input").send_keys("\n".join(str(p) for p in paths))
    driver.find_element(By.ID, "upload-submit").click()
    poll(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#upload-list .upload-item.done")) == len(paths),
         timeout=60, what=f"uploads of {contract}")


def _settled(driver: WebDriver, keys: list[str]) -> bool:
    statuses = {row.get_attribute("data-key"): row.get_attribute("data-status")
                for row in driver.find_elements(By.CSS_SELECTOR, "#files-table tr[data-key]")}
    return all(statuses.get(key) in ("processed", "rejected", "failed") for key in keys)


def take(settings: Settings, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []

    def shot(driver: WebDriver, name: str) -> None:
        path = out / f"console-{name}.png"
        driver.save_screenshot(str(path))
        saved.append(path)

    with tempfile.TemporaryDirectory(prefix="ivi-screenshots-") as temp, chromium() as driver:
        driver.set_window_size(1400, 900)
        driver.get(f"{settings.console_url}/login")
        shot(driver, "login")
        sign_in(driver, settings.console_url, settings.console_user, settings.console_password.get_secret_value())
        uploads = _files(Path(temp))
        for contract, paths in uploads.items():
            _upload(driver, settings, contract, paths)
        keys = [f"{contract}/{p.name}" for contract, paths in uploads.items() for p in paths]
        poll(lambda: _settled(driver, keys), timeout=WAIT_SECONDS, what="every upload processed", interval=1)
        shot(driver, "files")  # the last upload's progress, and the table the page refreshed
        driver.set_window_size(1400, 1500)
        driver.get(f"{settings.console_url}/file?key={quote('vendas/vendas-novembro.csv', safe='')}")
        shot(driver, "file")
        driver.get(f"{settings.console_url}/file?key={quote('clientes/planilha-errada.csv', safe='')}&lang=en")
        shot(driver, "rejected-en")
        driver.get(f"{settings.console_url}/contracts?lang=pt-BR")
        shot(driver, "contracts")
    return saved


@contextmanager
def _stack(own: bool) -> Iterator[Settings]:
    if not own:
        yield Settings()
        return
    from bench.own_stack import own_stack

    with own_stack() as settings:
        yield settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--own-stack", action="store_true", help="start a stack of its own (stopped after)")
    parser.add_argument("--out", type=Path, default=IMAGES, help="where the PNGs go")
    args = parser.parse_args()
    began = time.monotonic()
    with _stack(args.own_stack) as settings:
        for path in take(settings, args.out):
            print(f"saved {path}")
    print(f"took {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
