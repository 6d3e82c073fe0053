"""
A headless Chromium driven by Selenium for the browser test: found on the machine (Debian's ``chromium`` and
``chromium-driver``), never downloaded; waits are explicit and bounded; every check leaves a screenshot.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: where screenshots go unless ``ESML_E2E_ARTIFACTS`` names a folder (gitignored)
DEFAULT_ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver")
#: sets an input's value so that React sees the change (its onChange listens to "input" events)
_SET_VALUE = """
const [element, value] = arguments;
Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set.call(element, value);
element.dispatchEvent(new Event("input", {bubbles: true}));
"""
#: seconds any single wait in the page may take (the React UI fetches everything after the first paint)
WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class BrowserBinaries:
    """
    The browser and its driver.

    :param browser: path of the Chromium (or Chrome) executable.
    :param driver: path of the matching chromedriver.
    """

    browser: str
    driver: str


def _which(names: tuple[str, ...], override: str) -> str | None:
    wanted = os.environ.get(override)
    for name in (wanted,) if wanted else names:
        found = shutil.which(name)
        if found:
            return found
    return None


def find_browser() -> BrowserBinaries | str:
    """The browser and driver, or why the browser test cannot run (the reason it is skipped with).

    ``ESML_E2E_CHROMIUM`` and ``ESML_E2E_CHROMEDRIVER`` name other executables.
    """
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it is in the 'test' extra)"
    browser = _which(BROWSERS, "ESML_E2E_CHROMIUM")
    driver = _which(DRIVERS, "ESML_E2E_CHROMEDRIVER")
    if browser is None or driver is None:
        missing = " and ".join(name for name, path in (("Chromium", browser), ("chromedriver", driver)) if path is None)
        return f"no {missing} on this machine (apt-get install chromium chromium-driver; .ci/run tries)"
    return BrowserBinaries(browser, driver)


def artifacts_dir() -> Path:
    """The folder of this session's screenshots: ``$ESML_E2E_ARTIFACTS/browser`` or ``tests/e2e/artifacts/browser``."""
    base = Path(os.environ.get("ESML_E2E_ARTIFACTS") or DEFAULT_ARTIFACTS)
    folder = base / "browser"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


class Browser:
    """
    One headless Chromium session against the api-server; :meth:`close` always ends Chromium and the driver.

    :param binaries: the browser and driver to run.
    :param base_url: the api-server, e.g. ``http://127.0.0.1:8080``.
    :param artifacts: folder of the screenshots.
    :param secrets: text typed into the page that must not reach the artifacts (a failed check's HTML holds
        the inputs' values); chromedriver's log, which records every keystroke, is not kept for that reason.
    """

    def __init__(self, binaries: BrowserBinaries, base_url: str, artifacts: Path, secrets: Sequence[str] = ()) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.base_url = base_url
        self.artifacts = artifacts
        self.secrets = [secret for secret in secrets if secret]
        options = webdriver.ChromeOptions()
        options.binary_location = binaries.browser
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
            options.add_argument(argument)
        # its own session, so that close() can end Chromium's whole process group even if quit() fails
        self.service = Service(binaries.driver, log_output=subprocess.DEVNULL, popen_kw={"start_new_session": True})
        self.driver = webdriver.Chrome(service=self.service, options=options)
        self.driver.set_page_load_timeout(WAIT_SECONDS)

    def close(self) -> None:
        """Quit the browser, stop the driver, and kill whatever of their process group is left."""
        process = getattr(self.service, "process", None)
        try:
            self.driver.quit()
        finally:
            if process is not None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)

    def open(self, path: str) -> None:
        self.driver.get(f"{self.base_url}{path}")

    def wait(self, what: str, condition: Callable[[Any], Any], timeout: float = WAIT_SECONDS) -> Any:
        """
        Wait until ``condition(driver)`` is truthy; return it.

        :param what: what is awaited, for the timeout's message.
        :param condition: e.g. one of Selenium's ``expected_conditions``.
        :param timeout: seconds to wait.
        """
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, timeout).until(condition)
        except TimeoutException as exc:
            where = self.driver.current_url
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} at {where}") from exc

    def visible(self, xpath: str, what: str) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait(what, ec.visibility_of_element_located((By.XPATH, xpath)))

    def click(self, xpath: str, what: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        element = self.wait(what, ec.element_to_be_clickable((By.XPATH, xpath)))
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()

    def type_into(self, name: str, value: str) -> None:
        """
        Type ``value`` into the input named ``name`` and check that it holds it.

        Chromedriver's synthetic keystrokes into the React form sometimes lose one (seen with the CA path), so
        when the field does not hold the value after typing, it is set the way React's own test tools do (the
        input's native value setter and an ``input`` event), and checked again.

        :param name: the input's ``name`` attribute.
        :param value: the text to type.
        """
        from selenium.webdriver.common.keys import Keys

        element = self.visible(f"//input[@name={literal(name)}]", f"the field {name}")
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.BACKSPACE)
        element.send_keys(value)
        try:
            self.wait(f"{name} to hold what was typed", lambda _: element.get_attribute("value") == value, 5)
        except TimeoutError:
            self.driver.execute_script(_SET_VALUE, element, value)
            self.wait(f"{name} to hold {value!r}", lambda _: element.get_attribute("value") == value, 10)

    def login(self, username: str, password: str) -> None:
        """Sign in on the simple auth manager's login page, as a user would."""
        self.open("/auth/login")
        self.type_into("username", username)
        self.type_into("password", password)
        self.click("//button[@type='submit']", "the sign-in button")
        self.wait("the UI after signing in", lambda driver: "/auth/login" not in driver.current_url)

    def redacted(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def screenshot(self, name: str) -> None:
        """Save ``<name>.png`` in the artifacts folder."""
        self.driver.save_screenshot(str(self.artifacts / f"{name}.png"))

    @contextmanager
    def check(self, name: str) -> Iterator[None]:
        """
        One check of the test: a screenshot ``<name>.png`` when it ends, ``<name>-FAILED.png`` (and the page's
        HTML) when it fails.

        :param name: the screenshot's file name, without extension.
        """
        try:
            yield
        except BaseException:
            self.screenshot(f"{name}-FAILED")
            (self.artifacts / f"{name}-FAILED.html").write_text(self.redacted(self.driver.page_source))
            raise
        self.screenshot(name)


def literal(text: str) -> str:
    """``text`` as an XPath string literal (XPath 1.0 has no escapes: quotes are joined with concat())."""
    if "'" not in text:
        return f"'{text}'"
    return "concat(" + ', "\'", '.join(f"'{part}'" for part in text.split("'")) + ")"
