"""The app in real headless Chromium (Debian's chromium and chromium-driver, driven by Selenium): sign in, label
pairs by clicking and by keyboard, see a brief holding `<script>` as text, and find the labels in the export.
Skipped, saying what to install, where no Chromium is installed (`apt-get install chromium chromium-driver`); the
page's markup and shortcuts are checked without a browser in test_app.py."""

import json
import shutil

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from rlhf_ads import cli
from tests.annotate.server import serving

pytestmark = pytest.mark.integration  # a real server (or browser) on loopback

BROWSER, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (BROWSER and DRIVER):
        pytest.skip("no Chromium here: apt-get install chromium chromium-driver runs the browser test")
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def shown_assignment(driver) -> str | None:
    found = driver.find_elements(By.NAME, "assignment_id")
    return found[0].get_attribute("value") if found else None


def wait_for_next(driver, previous: str | None) -> None:
    """Until the next page is loaded in full and shows another pair (or none)."""
    WebDriverWait(driver, 20, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: d.execute_script("return document.readyState") == "complete" and shown_assignment(d) != previous)


def test_a_designer_signs_in_and_labels_by_click_and_by_keyboard(browser, store, tokens, tmp_path):
    with serving(store.path, "--overlap", "1") as url:
        browser.get(url + "/label")
        assert "Sign in first" in browser.page_source  # no token, no pairs
        browser.get(url + "/")
        browser.find_element(By.ID, "token").send_keys(tokens["ana"])
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for_next(browser, None)
        assert "Signed in as ana" in browser.find_element(By.TAG_NAME, "header").text
        keys = ActionChains(browser)
        ways = ["click", "2", "t", "reason", "u"]  # five pairs: a click, then keys
        briefs = []
        for way in ways:
            current = shown_assignment(browser)
            briefs.append(browser.find_element(By.CSS_SELECTOR, ".brief").text)
            if way == "click":
                browser.find_element(By.CSS_SELECTOR, "button[value=a]").click()
            elif way == "reason":  # r focuses the reason box; Esc leaves it; 1 picks A
                keys.send_keys("r").perform()
                browser.switch_to.active_element.send_keys("tone fits the brief")
                ActionChains(browser).send_keys("\ue00c").send_keys("1").perform()
            else:
                ActionChains(browser).send_keys(way).perform()
            wait_for_next(browser, current)
        assert "All done" in browser.page_source and "5 of 2 labelled" in browser.find_element(By.ID, "progress").text
        hostile = next(text for text in briefs if "notes app" in text)
        assert "<script>alert('brief')</script> notes app" in hostile  # shown as text, never run
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text
        browser.save_screenshot(str(tmp_path / "done.png"))
    choices = sorted(label.choice for label in store.labels())
    assert choices == ["a", "a", "b", "tie", "unusable"]
    out = tmp_path / "prefs.jsonl"
    assert cli.main(["annotate", "export", "--db", str(store.path), "--out", str(out), "--ties", str(tmp_path / "t.jsonl")]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and {r["designer_id"] for r in rows} == {"ana"}
    assert "tone fits the brief" in {r["reason"] for r in rows}
