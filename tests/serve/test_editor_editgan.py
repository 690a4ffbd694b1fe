"""The editor's EditGAN panel in headless Chromium, on the EditGAN fixtures (the rosinality 64 px generator, the
official classifier files, the random-trunk LPIPS): the segmentation shown, a class brush, the dilated edit region,
an edit session, its vector saved and applied with the scale slider."""

import base64
import io

import httpx
import numpy as np
import pytest

from tests.helpers import ServerProcess, editgan_checkpoints, lpips_checkpoint, png_pixels

http = httpx.Client(timeout=300)
RES = 64


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    G, S = editgan_checkpoints(tmp_path_factory)
    L = lpips_checkpoint(tmp_path_factory)[0]
    proc = ServerProcess(str(G), "--seg", f"{G.resolve().name}={S}", "--lpips", str(L), "--max-steps", "10",
                         "--max-sessions", "8")
    proc.model = G.resolve().name
    yield proc
    assert proc.stop() == 0, proc.output()


def test_paint_edit_save_and_apply_a_vector(server, open_page, screenshots):
    from jaxgan.edit.editgan import dilate_square
    page = open_page(server.url + "/")
    page.get_by_test_id("tab-editgan").click()
    page.wait_for_function("Number(document.querySelector('[data-testid=seg-canvas]').dataset.region) === 0")
    shown = page.evaluate("window.jaxganEditgan.painting()")
    seg = http.post(server.url + "/api/segment", json={"model": server.model, "seeds": [0], "trunc": 0.7}).json()
    served_labels = png_pixels(base64.b64decode(seg["labels"][0].split(",", 1)[1]))
    np.testing.assert_array_equal(np.asarray(shown["labels"]).reshape(RES, RES), served_labels)  # the image's own
    assert len(page.locator("[data-testid=legend] .swatch").all()) == 12

    page.get_by_test_id("class-select").select_option("3")
    page.get_by_test_id("seg-brush-radius").fill("3")
    box = page.get_by_test_id("seg-canvas").bounding_box()
    page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.4 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.45 * box["height"], steps=6)
    page.mouse.up()
    shown = page.evaluate("window.jaxganEditgan.painting()")
    painted = np.asarray(shown["painted"], bool).reshape(RES, RES)
    region = np.asarray(shown["region"], bool).reshape(RES, RES)
    target = np.asarray(shown["target"]).reshape(RES, RES)
    assert painted.sum() > 20 and np.all(target[painted] == 3)
    np.testing.assert_array_equal(target[~painted], served_labels[~painted])
    np.testing.assert_array_equal(region, dilate_square(painted, 7))  # the official loss's 7 x 7 dilation
    assert page.get_by_test_id("seg-region").text_content() == str(region.sum())

    page.get_by_test_id("edit-steps").fill("3")
    page.get_by_test_id("run-edit").click()
    page.wait_for_function("document.querySelector('[data-testid=edit-after]').dataset.session")
    assert page.get_by_test_id("edit-status").text_content().startswith("done")
    sid = page.get_by_test_id("edit-after").get_attribute("data-session")
    status = http.get(f"{server.url}/api/editgan/{sid}").json()
    assert status["state"] == "done" and status["region_pixels"] == region.sum() and 3 in status["class_ids"]
    page.wait_for_function("document.querySelector('[data-testid=edit-after]').naturalWidth === 64")
    page.screenshot(path=screenshots / "editor_editgan.png")

    with page.expect_download() as saved:
        page.get_by_test_id("save-vector").click()
    vector = np.load(saved.value.path())["vector"]
    served_vector = np.load(io.BytesIO(http.get(f"{server.url}/api/editgan/{sid}/vector.npz").content))["vector"]
    np.testing.assert_array_equal(vector, served_vector)
    assert page.locator("[data-testid=vector-select] option").count() == 2  # the placeholder and the saved one

    with page.expect_request("**/api/editgan/apply") as request:
        page.get_by_test_id("vector-scale").fill("0.5")  # the slider's change applies the vector
    sent = request.value.post_data_json
    assert sent["scale"] == 0.5 and sent["seed"] == 0 and sent["vector"].startswith("data:")
    page.wait_for_function("document.querySelector('[data-testid=apply-result]').naturalWidth === 64")
    applied = page.get_by_test_id("apply-result").get_attribute("data-session")
    result = np.load(io.BytesIO(http.get(f"{server.url}/api/editgan/{applied}/latent.npy").content))
    edited = np.load(io.BytesIO(http.get(f"{server.url}/api/editgan/{sid}/latent.npy").content))
    start = edited - vector  # the vector is the edit's result minus its input
    np.testing.assert_allclose(result, start + 0.5 * vector, atol=1e-6)  # w + 0.5 v, no refinement
