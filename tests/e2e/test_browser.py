"""
The UI in a real headless Chromium, on the stack of the other e2e tests: the typed connection form of
``elasticsearch_ml``, saving and testing a connection through it, and the Kibana link of a finished task.

Skipped, with the reason, when no Chromium or chromedriver is found (``.ci/run`` installs Debian's).
Screenshots of every check go to ``$ESML_E2E_ARTIFACTS/browser/`` (default ``tests/e2e/artifacts/browser/``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from airflow_esml.connection_form import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from airflow_esml.links import TrainedModelsLink
from tests.e2e._airflow import ADMIN_USER, AirflowStack
from tests.e2e._api import TERMINAL_RUN_STATES, AirflowApi
from tests.e2e._browser import Browser, BrowserBinaries, artifacts_dir, find_browser, literal
from tests.e2e._scan import find_leaks, read_files
from tests.e2e._simulator import RunningSimulator
from tests.e2e._watch import failure_report
from tests.e2e.conftest import KIBANA_URL

_FOUND = find_browser()
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),
    pytest.mark.skipif(isinstance(_FOUND, str), reason=str(_FOUND)),
]

CONN_TYPE_LABEL = "Elasticsearch ML"
FORM_CONN_ID = "esml_browser_form"
LINK_DAG, LINK_TASK = "e2e_kibana_link", "scale_my_e5"


@pytest.fixture(scope="module")
def artifacts(request: pytest.FixtureRequest) -> Path:
    folder = artifacts_dir()
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nbrowser test screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser(airflow_stack: AirflowStack, simulator: RunningSimulator, artifacts: Path) -> Iterator[Browser]:
    """A signed-in Chromium on the api-server; stopped, with its driver, whatever happens."""
    assert isinstance(_FOUND, BrowserBinaries)
    typed_secrets = [airflow_stack.admin_password, simulator.api_key]
    session = Browser(_FOUND, airflow_stack.base_url, artifacts, secrets=typed_secrets)
    try:
        with session.check("0-signed-in"):
            session.login(ADMIN_USER, airflow_stack.admin_password)
        yield session
    finally:
        session.close()


# -- the Add Connection dialog -------------------------------------------------------------------------


def field_group(name: str) -> str:
    """XPath of the form field (label, input, helper text) whose input is named ``name``."""
    return f"//*[@role='group'][@data-scope='field'][.//*[@name={literal(name)}]]"


def open_connection_form(browser: Browser, conn_id: str) -> None:
    """The Add Connection dialog with ``conn_id`` and the type "Elasticsearch ML" chosen (standard fields open)."""
    browser.open("/connections")
    browser.click("//button[normalize-space()='Add Connection']", "the Add Connection button")
    browser.type_into("connection_id", conn_id)
    browser.visible("//input[@role='combobox']", "the connection type picker").send_keys("Elasticsearch")
    browser.click(f"//*[@role='option'][normalize-space()={literal(CONN_TYPE_LABEL)}]", "the type in the picker")
    browser.visible("//input[@name='host']", "the standard fields of the type")


def open_extra_fields(browser: Browser) -> None:
    """Unfold the dialog's Extra Fields section (which folds the standard fields)."""
    browser.click("//button[normalize-space()='Extra Fields']", "the Extra Fields section")
    browser.visible("//input[@name='element_api_key']", "the typed extra fields")


def label_of(browser: Browser, name: str) -> str:
    return str(browser.visible(f"{field_group(name)}//label[@data-part='label']", f"the label of {name}").text)


def test_connection_form_shows_the_typed_fields(browser: Browser) -> None:
    with browser.check("1-connection-form-extra-fields"):
        open_connection_form(browser, "esml_form_only")
        behaviour = UI_FIELD_BEHAVIOUR
        for name in ("host", "port", "schema"):
            assert label_of(browser, name) == behaviour["relabeling"][name]
            placeholder = browser.driver.find_element("name", name).get_attribute("placeholder")
            assert placeholder == behaviour["placeholders"][name], name
        assert browser.driver.find_element("name", "port").get_attribute("type") == "number"
        browser.screenshot("1-connection-form-standard-fields")

        open_extra_fields(browser)
        inputs = {name: browser.driver.find_element("name", f"element_{name}") for name in CONN_FIELDS}
        for name, field in CONN_FIELDS.items():
            assert label_of(browser, f"element_{name}") == field["label"], name
        assert inputs["api_key"].get_attribute("type") == "password"  # a secret input
        verify = inputs["verify_certs"]
        assert verify.get_attribute("type") == "checkbox" and verify.is_selected()  # a switch, on by default
        timeout = inputs["request_timeout"]
        assert timeout.get_attribute("role") == "spinbutton"  # a number input
        assert timeout.get_attribute("value") == str(CONN_FIELDS["request_timeout"]["schema"]["default"])
        assert timeout.get_attribute("aria-valuemin") == "1"
        for name in ("ca_certs", "cloud_id", "kibana_url"):
            assert inputs[name].get_attribute("type") in (None, "", "text"), name
        helper = browser.visible(f"{field_group('element_ca_certs')}//*[@data-part='helper-text']", "help text")
        assert helper.text == CONN_FIELDS["ca_certs"]["description"]


def test_connection_saved_and_tested_through_the_form(
    browser: Browser, api: AirflowApi, simulator: RunningSimulator
) -> None:
    with browser.check("2-connection-saved"):
        open_connection_form(browser, FORM_CONN_ID)
        standard = {"host": "127.0.0.1", "port": str(simulator.port), "schema": "https"}
        extras = {"api_key": simulator.api_key, "ca_certs": str(simulator.ca_file), "kibana_url": KIBANA_URL}
        for name, value in standard.items():
            browser.type_into(name, value)
        open_extra_fields(browser)
        for name, value in extras.items():
            browser.type_into(f"element_{name}", value)
        browser.click("//button[normalize-space()='Save']", "the Save button")
        row = f"//tr[.//*[normalize-space()={literal(FORM_CONN_ID)}]]"
        browser.visible(row, f"{FORM_CONN_ID} in the list of connections")

        saved = api.get(f"/connections/{FORM_CONN_ID}")
        assert (saved["conn_type"], saved["host"], saved["port"], saved["schema"]) == (
            "elasticsearch_ml", "127.0.0.1", simulator.port, "https"
        )  # fmt: skip
        extra = json.loads(saved["extra"])
        assert extra["api_key"] == "***"  # stored, and masked by the API
        assert extra["ca_certs"] == str(simulator.ca_file) and extra["kibana_url"] == KIBANA_URL
        assert extra["verify_certs"] is True and extra["request_timeout"] == 30

    with browser.check("3-connection-tested"):
        browser.click(f"{row}//button[@aria-label='Test Connection']", "the connection's Test button")
        title = "[@data-part='title'][starts-with(normalize-space(), 'Test Connection')]"
        toast = browser.visible(f"//*[@data-scope='toast'][@data-part='root'][.//*{title}]", "the test's toast")
        assert toast.get_attribute("data-type") == "success", toast.text
        assert "Connected to Elasticsearch" in toast.text, toast.text


def finished_state(api: AirflowApi, dag_id: str, run_id: str, timeout: float) -> str:
    """
    The run's final state; an answer slower than the client's timeout (a busy api-server on SQLite) is polled
    again, within ``timeout``.

    :param api: the REST client.
    :param dag_id: the DAG.
    :param run_id: the run.
    :param timeout: seconds to wait in all.
    """

    def state() -> str | None:
        try:
            found = api.run_state(dag_id, run_id)
        except httpx.TimeoutException:
            return None
        return found if found in TERMINAL_RUN_STATES else None

    return str(api.wait_for(f"run {dag_id}/{run_id} to finish", state, timeout, interval=1))


def test_kibana_link_on_a_finished_task(browser: Browser, api: AirflowApi) -> None:
    """A task of a run on a connection with ``kibana_url`` (``KIBANA_CONN_ID``) shows the link on its Details tab."""
    api.wait_for_dag(LINK_DAG, 120)
    api.unpause(LINK_DAG)
    run_id = api.trigger(LINK_DAG)
    assert finished_state(api, LINK_DAG, run_id, 240) == "success", failure_report(api, LINK_DAG, run_id)

    with browser.check("4-kibana-link"):
        browser.open(f"/dags/{LINK_DAG}/runs/{quote(run_id, safe='')}/tasks/{LINK_TASK}/details")
        link = browser.visible(f"//a[normalize-space()={literal(TrainedModelsLink.name)}]", "the Kibana link")
        assert link.get_dom_attribute("href") == TrainedModelsLink.url(KIBANA_URL, "my-e5")
        assert link.get_dom_attribute("target") == "_blank"


def test_no_secret_in_the_screenshots_folder(
    browser: Browser, airflow_stack: AirflowStack, simulator: RunningSimulator, artifacts: Path
) -> None:
    """The password and the API key typed into the pages appear in no file the browser test keeps."""
    files = sorted(path for path in artifacts.rglob("*") if path.is_file())
    assert any(path.suffix == ".png" for path in files), files
    secrets = {"Elasticsearch API key": simulator.api_key, **airflow_stack.secrets}
    assert find_leaks(secrets, read_files(files)) == []
