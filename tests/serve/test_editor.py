"""The browser editor (`jaxgan serve`'s page at /) in headless Chromium on the bundled model: what the page shows
and sends is checked against the API's own answers for the same session."""

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.helpers import ServerProcess, fixture_path, lpips_alex_checkpoint, lpips_checkpoint, png_pixels

http = httpx.Client(timeout=300)
RES = 32  # the bundled model's resolution
TOKEN = "editor-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess("demo", "--lpips", str(lpips_checkpoint(tmp_path_factory)[0]), "--lpips-alex",
                         str(lpips_alex_checkpoint(tmp_path_factory)[0]), "--max-steps", "2000", "--max-sessions", "16")
    yield proc
    assert proc.stop() == 0, proc.output()


@pytest.fixture(scope="module")
def plain_server():
    """The bundled model without LPIPS (no inversion: the page says which files to convert), behind a token."""
    proc = ServerProcess("demo", "--max-steps", "2000", "--max-sessions", "8", "--token", TOKEN)
    yield proc
    assert proc.stop() == 0, proc.output()


def click_pixel(page, testid: str, row: int, col: int) -> None:
    """Click the centre of image pixel (row, col) on a canvas that shows the whole image."""
    box = page.get_by_test_id(testid).bounding_box()
    page.get_by_test_id(testid).click(position={"x": (col + 0.5) / RES * box["width"],
                                                "y": (row + 0.5) / RES * box["height"]})


def stroke(page, testid: str, pixels) -> None:
    """Press at the first (row, col), move through the others, release: a brush stroke."""
    box = page.get_by_test_id(testid).bounding_box()
    at = [(box["x"] + (c + 0.5) / RES * box["width"], box["y"] + (r + 0.5) / RES * box["height"]) for r, c in pixels]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=4)
    page.mouse.up()


def new_image(page, seed: int) -> None:
    page.get_by_test_id("seed-input").fill(str(seed))
    page.get_by_test_id("new-image").click()
    page.wait_for_selector("[data-testid=canvas][data-ready='1']")


def wait_state(page, *states: str) -> str:
    page.wait_for_function("states => states.includes(document.querySelector('[data-testid=status]').textContent)",
                           arg=list(states))
    return page.get_by_test_id("status").text_content()


def canvas_data(page) -> dict:
    canvas = page.get_by_test_id("canvas")
    return {"sid": canvas.get_attribute("data-session-id"), "points": json.loads(canvas.get_attribute("data-points")),
            "targets": json.loads(canvas.get_attribute("data-targets"))}


def drag_once(page, handle, target, steps: int) -> dict:
    click_pixel(page, "canvas", *handle)
    click_pixel(page, "canvas", *target)
    page.get_by_test_id("steps-input").fill(str(steps))
    page.get_by_test_id("start").click()
    assert wait_state(page, "done", "failed") == "done"
    return canvas_data(page)


def test_a_drag_in_the_page_equals_the_api_session(server, open_page, screenshots):
    page = open_page(server.url + "/")
    click_pixel(page, "canvas", 20, 10)
    click_pixel(page, "canvas", 20, 6)
    # the click at the fraction (fx, fy) of the canvas is the pixel (row fy * H, col fx * W)
    assert canvas_data(page)["points"] == [[20, 10]] and canvas_data(page)["targets"] == [[20, 6]]
    page.get_by_test_id("steps-input").fill("60")
    page.get_by_test_id("start").click()
    assert wait_state(page, "done", "failed") == "done"
    shown = canvas_data(page)
    status = http.get(f"{server.url}/api/drag/{shown['sid']}").json()
    assert shown["points"] == status["points"] and shown["targets"] == status["targets"] == [[20, 6]]
    assert status["distances"][0] < 4.0, status  # the handle moved towards its target (4 px away at the start)
    assert page.get_by_test_id("step-count").text_content() == str(status["step"])
    assert json.loads(page.get_by_test_id("distances").get_attribute("data-values")) == status["distances"]
    trace = np.load(io.BytesIO(http.get(f"{server.url}/api/drag/{shown['sid']}/trace.npz").content))
    assert trace["points"][0].tolist() == [[20, 10]]  # the handle as clicked
    page.screenshot(path=screenshots / "editor_drag.png")

    with page.expect_download() as image:
        page.get_by_test_id("download-image").click()
    np.testing.assert_array_equal(png_pixels(open(image.value.path(), "rb").read()),
                                  png_pixels(http.get(f"{server.url}/api/drag/{shown['sid']}/image.png").content))
    with page.expect_download() as latent:
        page.get_by_test_id("download-latent").click()
    assert np.load(latent.value.path()).shape == (8, 64)
    with page.expect_download() as gif:
        page.get_by_test_id("download-gif").click()
    assert open(gif.value.path(), "rb").read(6) == b"GIF89a"


def test_the_mask_reaches_the_server_and_undo_goes_back_one_drag(server, open_page):
    page = open_page(server.url + "/")
    new_image(page, 1)
    page.get_by_test_id("brush-radius").fill("2")
    page.get_by_test_id("mode-flexible").check()
    stroke(page, "canvas", [(16, 4), (16, 14), (24, 14), (24, 4)])
    page.get_by_test_id("mode-fixed").check()
    stroke(page, "canvas", [(24, 4), (24, 6)])
    movable = np.asarray(page.evaluate("window.jaxganDrag.mask()")).reshape(RES, RES)
    assert movable[16, 9] and movable[20, 14] and not movable[24, 5] and not movable[2, 28]

    page.get_by_test_id("mode-points").check()
    first = drag_once(page, (20, 10), (20, 7), steps=40)
    sid = first["sid"]
    served = png_pixels(http.get(f"{server.url}/api/drag/{sid}/mask.png").content)
    np.testing.assert_array_equal(served > 127, movable)  # what the server drags with is what was painted
    after_first = png_pixels(http.get(f"{server.url}/api/drag/{sid}/image.png").content)

    second = drag_once(page, (12, 20), (12, 23), steps=30)  # a second drag on the same image: one session
    assert second["sid"] == sid and http.get(f"{server.url}/api/drag/{sid}").json()["runs"] == 2
    page.keyboard.press("z")
    page.wait_for_function("document.querySelector('[data-testid=status]').textContent === 'stopped'")
    status = http.get(f"{server.url}/api/drag/{sid}").json()
    assert status["runs"] == 1 and status["stop_reason"] == "undone"
    page.wait_for_function("pts => document.querySelector('[data-testid=canvas]').dataset.points === pts",
                           arg=json.dumps(status["points"], separators=(",", ":")))
    np.testing.assert_array_equal(png_pixels(http.get(f"{server.url}/api/drag/{sid}/image.png").content), after_first)


def test_two_users_drag_at_once_and_a_reload_reattaches(plain_server, open_page):
    url = f"{plain_server.url}/?token={TOKEN}"  # given once; the tab keeps it and drops it from the address
    a, b = open_page(url), open_page(url)
    assert "token" not in a.url
    new_image(b, 3)
    for page, handle, target, steps in ((a, (20, 10), (20, 6), 1500), (b, (14, 12), (14, 16), 40)):
        click_pixel(page, "canvas", *handle)
        click_pixel(page, "canvas", *target)
        page.get_by_test_id("steps-input").fill(str(steps))
        page.get_by_test_id("lr-input").fill("0.0001" if page is a else "0.01")
    a.get_by_test_id("start").click()
    b.get_by_test_id("status").click()  # out of the text field: keys are shortcuts again
    b.keyboard.press("Space")  # the keyboard's start
    assert wait_state(b, "done") == "done"
    sid_a, sid_b = canvas_data(a)["sid"], canvas_data(b)["sid"]
    assert sid_a and sid_b and sid_a != sid_b
    assert sid_a not in json.dumps(b.evaluate("Object.assign({}, sessionStorage)"))  # B never holds A's session

    a.reload()
    a.wait_for_selector("body[data-ready='1']")
    assert canvas_data(a)["sid"] == sid_a and wait_state(a, "running", "done") == "running"
    seen = int(a.get_by_test_id("step-count").text_content())
    a.wait_for_function("n => Number(document.querySelector('[data-testid=step-count]').textContent) > n", arg=seen)
    a.keyboard.press("Space")  # the keyboard's stop
    assert wait_state(a, "stopped") == "stopped"
    for page, sid in ((a, sid_a), (b, sid_b)):
        status = http.get(f"{plain_server.url}/api/drag/{sid}", headers=AUTH).json()
        page.wait_for_function("n => document.querySelector('[data-testid=step-count]').textContent === n",
                               arg=str(status["step"]), timeout=10_000)  # the end event may still be on its way
        assert canvas_data(page)["points"] == status["points"]
    assert http.get(f"{plain_server.url}/api/drag/{sid_a}", headers=AUTH).json()["state"] == "stopped"
    assert http.get(f"{plain_server.url}/api/drag/{sid_a}").status_code == 401

    # no LPIPS on this server: the photo panel says which files to convert, an upload gets a one-line error
    assert "vgg16-397923af.pth" in a.get_by_test_id("invert-info").text_content()
    a.get_by_test_id("upload-photo").set_input_files(files=[{"name": "face.png", "mimeType": "image/png",
                                                              "buffer": _png_bytes(np.zeros((RES, RES, 3)))}])
    assert "without --lpips" in a.get_by_test_id("error").text_content()


def _png_bytes(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_photo_is_inverted_then_dragged(server, open_page, tmp_path):
    generated = http.post(server.url + "/api/generate", json={"model": "demo", "seeds": [7], "trunc": 0.7}).json()
    photo = tmp_path / "face.png"
    photo.write_bytes(base64.b64decode(generated["images"][0].split(",", 1)[1]))
    page = open_page(server.url + "/")
    assert page.get_by_test_id("invert-method").input_value() == "pti"  # the server has PTI's networks
    page.get_by_test_id("invert-method").select_option("latent")
    page.get_by_test_id("invert-space").select_option("w+")
    page.get_by_test_id("invert-steps").fill("25")
    page.get_by_test_id("upload-photo").set_input_files(str(photo))
    page.wait_for_function("document.querySelector('[data-testid=invert-info]').dataset.session")
    progress = page.get_by_test_id("invert-progress")
    assert progress.evaluate("p => [p.value, p.max]") == [24, 24]  # the embedding makes steps - 1 updates
    sid = page.get_by_test_id("invert-info").get_attribute("data-session")
    inverted = np.load(io.BytesIO(http.get(f"{server.url}/api/invert/{sid}/latent.npy").content))
    status = http.get(f"{server.url}/api/invert/{sid}").json()
    assert "PSNR" in page.get_by_test_id("invert-info").text_content() and status["state"] == "done"
    assert "inverted" in page.get_by_test_id("image-source").text_content()

    drag_once(page, (20, 10), (20, 7), steps=10)
    page.get_by_test_id("undo").click()
    assert wait_state(page, "stopped") == "stopped"
    drag_sid = canvas_data(page)["sid"]
    started_from = np.load(io.BytesIO(http.get(f"{server.url}/api/drag/{drag_sid}/latent.npy").content))
    np.testing.assert_array_equal(started_from, inverted)  # the drag started from the inversion's latent


def test_a_photo_tuned_by_pti_is_dragged_on_its_tuned_generator(server, open_page):
    page = open_page(server.url + "/")
    page.get_by_test_id("invert-steps").fill("3")       # the pivot's steps
    page.get_by_test_id("invert-tune-steps").fill("4")
    page.get_by_test_id("upload-photo").set_input_files(str(fixture_path("images/chelsea.png")))
    page.wait_for_function("document.querySelector('[data-testid=invert-info]').dataset.session")
    sid = page.get_by_test_id("invert-info").get_attribute("data-session")
    status = http.get(f"{server.url}/api/invert/{sid}").json()
    assert status["state"] == "done" and status["method"] == "pti" and status["step"] == 7, status
    info = page.get_by_test_id("invert-info").text_content()
    assert "\u2192" in info and "editing on the tuned generator" in info
    # the page switched to the tuned generator and shows its image of the pivot
    assert page.get_by_test_id("model-select").input_value() == status["tuned_model"]
    assert "PTI" in page.get_by_test_id("image-source").text_content()
    page.wait_for_selector("[data-testid=canvas][data-ready='1']")

    drag = drag_once(page, (20, 10), (20, 7), steps=2)
    assert http.get(f"{server.url}/api/drag/{drag['sid']}").json()["model"] == status["tuned_model"]
    pivot = np.load(io.BytesIO(http.get(f"{server.url}/api/invert/{sid}/latent.npy").content))
    page.get_by_test_id("undo").click()
    assert wait_state(page, "stopped") == "stopped"
    started_from = np.load(io.BytesIO(http.get(f"{server.url}/api/drag/{drag['sid']}/latent.npy").content))
    np.testing.assert_array_equal(started_from, pivot)


def test_generate_grid_opens_a_seed_in_drag_and_errors_are_one_line(server, open_page):
    page = open_page(server.url + "/", allowed=("status of 400",))
    page.get_by_test_id("tab-generate").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=grid] img').length === 12")
    page.locator("[data-testid=grid] img[data-seed='5']").click()
    page.wait_for_selector("[data-testid=canvas][data-ready='1']")
    assert page.get_by_test_id("canvas").is_visible() and page.get_by_test_id("seed-input").input_value() == "5"
    assert page.get_by_test_id("image-source").text_content().startswith("seed 5")

    page.get_by_test_id("start").click()  # no points yet
    assert "click a handle" in page.get_by_test_id("error").text_content()
    click_pixel(page, "canvas", 10, 10)
    click_pixel(page, "canvas", 10, 12)
    page.get_by_test_id("steps-input").fill("100000")
    page.get_by_test_id("start").click()  # the server refuses: its message, on one line
    page.wait_for_function("document.querySelector('[data-testid=error]').textContent.includes('cap')")
    error = page.get_by_test_id("error")
    assert error.is_visible() and "\n" not in error.text_content() and page.get_by_test_id("canvas").is_visible()
