"""EditGAN through `jaxgan serve G --seg NAME=S --lpips L` on the fixtures (the rosinality 64 px generator, the
official classifier files, the random-trunk LPIPS): segmentation, an edit session and the application of its
vector with refinement, each equal to the library call `jaxgan editgan` makes."""

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.helpers import (ServerProcess, editgan_checkpoints, lpips_checkpoint, png_data_url,
                           wait_session_end)

http = httpx.Client(timeout=300)  # the first request of a kind waits for its compilation
STEPS = 3


def decode(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    G, S = editgan_checkpoints(tmp_path_factory)
    return G, S, lpips_checkpoint(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def server(checkpoints):
    G, S, L = checkpoints
    name = G.resolve().name
    proc = ServerProcess(str(G), "--seg", f"{name}={S}", "--lpips", str(L), "--max-sessions", "8", "--max-batch", "1")
    proc.model = name
    yield proc
    assert proc.stop() == 0, proc.output()


@pytest.fixture(scope="module")
def models(checkpoints):
    from jaxgan.checkpoint import load_model
    G, S, L = checkpoints
    return (load_model(G, "stylegan2-generator", name="G"), load_model(S, "segbranch"),
            load_model(L, "lpips"))


@pytest.mark.slow  # a longer check that CI skips (`pytest -m slow` runs it)
def test_segment_edit_and_apply_equal_the_library(server, models):
    from jaxgan.edit import editgan, editgan_outputs
    G, S, L = models
    url, name = server.url, server.model
    (described,) = http.get(url + "/api/models").json()
    assert {"segment", "editgan"} <= set(described["capabilities"])
    assert described["segmentation"]["num_classes"] == 12

    seg = http.post(url + "/api/segment", json={"model": name, "seeds": [0, 1], "trunc": 0.7}).json()
    ws = np.asarray(seg["ws"], np.float32)
    images, labels = editgan.render(G, S, ws)
    np.testing.assert_array_equal(np.stack([decode(u) for u in seg["labels"]]), labels)
    assert decode(seg["colors"][0]).shape == (64, 64, 3) and len(seg["uncertainty"]) == 2

    target = labels[1].copy()
    target[20:36, 20:36] = 4
    region = np.zeros((64, 64), np.uint8)
    region[20:36, 20:36] = 255
    created = http.post(url + "/api/editgan/edit", json={
        "model": name, "ws": ws[1].tolist(), "target": png_data_url(target, "L"), "region": png_data_url(region, "L"),
        "steps": STEPS})
    assert created.status_code == 201, created.text
    status = wait_session_end(url, "editgan", created.json()["id"], timeout=600)
    want = editgan.edit(G, S, L, ws[1:2], target[None], region[None].astype(bool), editgan.EditConfig(steps=STEPS))
    assert status["state"] == "done" and status["step"] == STEPS - 1
    assert status["class_ids"] == want["class_ids"][0]
    edit_id = status["id"]
    latent = np.load(io.BytesIO(http.get(f"{url}/api/editgan/{edit_id}/latent.npy").content))
    np.testing.assert_allclose(latent, want["ws"][0], atol=1e-4, rtol=0)
    vector_file = http.get(f"{url}/api/editgan/{edit_id}/vector.npz").content
    vector, class_ids, meta = editgan_outputs.load_edit_vector(_saved(vector_file), G.config.num_ws, G.config.w_dim)
    np.testing.assert_allclose(vector, want["vectors"][0], atol=1e-4, rtol=0)
    assert class_ids == want["class_ids"][0]
    np.testing.assert_array_equal(decode_png(http.get(f"{url}/api/editgan/{edit_id}/labels.png").content),
                                  editgan.render(G, S, latent[None])[1][0])

    applied = http.post(url + "/api/editgan/apply", json={
        "model": name, "ws": ws[0].tolist(), "vector_session": edit_id, "scale": 1.0, "steps": STEPS})
    assert applied.status_code == 201, applied.text
    status = wait_session_end(url, "editgan", applied.json()["id"], timeout=600)
    want = editgan.apply_and_refine(G, S, L, ws[:1], vector, class_ids, 1.0, editgan.EditConfig(steps=STEPS))
    latent = np.load(io.BytesIO(http.get(f"{url}/api/editgan/{status['id']}/latent.npy").content))
    np.testing.assert_allclose(latent, want["ws"][0], atol=1e-4, rtol=0)
    assert http.get(f"{url}/api/editgan/{status['id']}/vector.npz").status_code == 409  # apply makes no vector

    # the vector file itself, without refinement: the latent moves by exactly scale * vector
    moved = http.post(url + "/api/editgan/apply", json={
        "model": name, "ws": ws[0].tolist(), "vector": "data:application/octet-stream;base64,"
        + base64.b64encode(vector_file).decode(), "scale": 0.5}).json()
    assert moved["state"] == "done"
    latent = np.load(io.BytesIO(http.get(f"{url}/api/editgan/{moved['id']}/latent.npy").content))
    np.testing.assert_allclose(latent, ws[0] + np.float32(0.5) * vector, atol=1e-6)

    bad = http.post(url + "/api/editgan/edit", json={
        "model": name, "seed": 0, "target": png_data_url(np.full((64, 64), 40), "L"),
        "region": png_data_url(region, "L")})
    assert bad.status_code == 400 and "class id 40" in bad.json()["error"]


def _saved(data: bytes):
    import tempfile
    f = tempfile.NamedTemporaryFile(suffix=".npz", delete=False)
    f.write(data)
    f.close()
    return f.name


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))
