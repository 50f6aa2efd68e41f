"""Playwright drives Debian's chromium: open the app, upload an image, click a pixel, see the panels change (the graph,
what-if, class flow, the training slider moved once, the model table, an example, the DCN and CCNet models)."""
import os
import re
import shutil
from pathlib import Path

import cv2
import pytest

from dgmn.app import build_app
from dgmn.data import ContextScenes
from dgmn.inspect.explorer import Explorer

from .conftest import served

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-quic", "--disable-sync"]


def test_upload_click_and_panels_change(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is installed by .ci/run")
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install -y chromium)")
    ds = ContextScenes(seed=2024, size=(128, 256))
    # a mixed scene, clicked on its boathouse: the case the app is there to explain
    sc = next(s for s in map(ds.scene, range(50)) if {4, 5} <= {b[0] for b in s.buildings})
    img = tmp_path / "scene.png"
    cv2.imwrite(str(img), cv2.cvtColor(sc.image, cv2.COLOR_RGB2BGR))
    cls, y0, y1, x0, x1 = next(b for b in sc.buildings if b[0] == 5)
    with served(build_app(Explorer())) as url:  # the shipped checkpoints: this is what a user sees
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.goto(url, wait_until="load")
            page.wait_for_selector("#upload input[type=file]", state="attached", timeout=60_000)
            status = page.locator("#status textarea")
            page.locator("#upload input[type=file]").set_input_files(str(img))
            sync_api.expect(status).to_have_value(re.compile("Click a pixel"), timeout=60_000)
            before = page.locator("#context0").inner_html()
            shown = page.locator("#img img").first
            box = shown.bounding_box()
            # click the middle of the first building, in the displayed image's coordinates
            cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
            shown.click(position={"x": cx * box["width"] / 256, "y": cy * box["height"] / 128})
            sync_api.expect(status).to_have_value(re.compile(r"Pixel \(x="), timeout=60_000)
            page.wait_for_timeout(1500)
            after_nodes = page.locator("#context0").inner_html()
            after_attention = page.locator("#context1").inner_html()
            assert after_nodes != before and "rate" in after_nodes
            assert "attention" in after_attention
            # what if: switch off the two larger rates at the clicked boathouse pixel
            page.get_by_role("tab", name="What if…").click()
            summary = page.locator("#wi-summary")
            before_what_if = summary.inner_text()
            page.locator("#wi-rates").get_by_label("rate #2").check()
            page.locator("#wi-rates").get_by_label("rate #3").check()
            page.locator("#wi-pixel").click()
            sync_api.expect(summary).to_contain_text("dgmn-full:", timeout=60_000)
            assert summary.inner_text() != before_what_if and "fcn-nonlocal: skipped" in summary.inner_text()
            sync_api.expect(page.locator("#wi-bars0")).to_contain_text("before → after", timeout=30_000)
            # where the clicked pixel's class (a boathouse) draws its messages from, per model
            page.get_by_role("tab", name="Where a class looks").click()
            page.locator("#flow-button").click()
            sync_api.expect(page.locator("#flow-info")).to_contain_text("dgmn-full: boathouse", timeout=60_000)
            sync_api.expect(page.locator("#flow-bars0")).to_contain_text("share of its messages per source", timeout=30_000)
            # the training timeline (shipped for dgmn-full and fcn-nonlocal): move the slider off step 0
            page.get_by_role("tab", name="Training").click()
            info = page.locator("#tl-info")
            sync_api.expect(info).to_contain_text("Step 0", timeout=120_000)
            track = page.locator("#tl-slider input[type=range]")
            b = track.bounding_box()
            track.click(position={"x": 0.6 * b["width"], "y": b["height"] / 2})  # pointer up: Gradio's "release"
            sync_api.expect(info).to_contain_text(re.compile(r"Step [1-9]\d*"), timeout=120_000)
            step = re.search(r"Step (\d+)", info.inner_text()).group(1)
            sync_api.expect(page.locator("#tl-graph0")).to_contain_text(f"at step {step}", timeout=30_000)
            page.get_by_role("tab", name="Graph").click()
            # what each model is, from the cards, one click away
            page.get_by_text("The models: what each one is and how it scored").click()
            sync_api.expect(page.locator("#model-cards")).to_contain_text("learned random walks", timeout=10_000)
            sync_api.expect(page.locator("#model-cards")).to_contain_text("over 3 seeds")
            page.get_by_text("The models: what each one is and how it scored").click()
            # the page on a projector and on a large screen (what a room sees: the viewport, not the whole page)
            for width, height, name in ((1280, 720, "app-screenshot-1280x720.png"), (1920, 1080, "app-screenshot.png")):
                page.set_viewport_size({"width": width, "height": height})
                page.wait_for_timeout(1000)
                shot = tmp_path / name
                page.screenshot(path=str(shot))
                if os.environ.get("DGMN_UPDATE_SCREENSHOT") == "1":
                    shutil.copy(shot, ROOT / "docs" / name)
            # an example thumbnail is analysed like an upload (a generated scene: errors vs its ground truth)
            page.locator("#examples button.thumbnail-item").first.click()
            sync_api.expect(status).to_have_value(re.compile("Click a pixel"), timeout=60_000)
            sync_api.expect(page.locator("#dis0")).to_contain_text("errors vs ground truth", timeout=30_000)
            # the deformable-conv and criss-cross models beside DGMN: their own panels for a clicked pixel
            models = page.locator("#models")
            for name, on in (("fcn-nonlocal", False), ("fcn", False), ("fcn-dcn", True), ("fcn-ccnet", True)):
                box = models.get_by_label(name, exact=True)
                box.check() if on else box.uncheck()
            sync_api.expect(status).to_have_value(re.compile("Click a pixel"), timeout=60_000)
            page.wait_for_timeout(1000)
            box = shown.bounding_box()
            shown.click(position={"x": box["width"] / 2, "y": box["height"] / 2})
            sync_api.expect(status).to_have_value(re.compile(r"Pixel \(x="), timeout=60_000)
            page.wait_for_timeout(1500)
            panels = page.locator("#context0").inner_html() + page.locator("#context1").inner_html() + page.locator("#context2").inner_html()
            assert "sampled points" in panels and "pass 1: the pixel" in panels
            assert "fcn-dcn" in status.input_value() and "fcn-ccnet" in status.input_value()
            browser.close()
