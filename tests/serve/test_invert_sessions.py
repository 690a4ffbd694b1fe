"""Inversion sessions and LPIPS distances through `jaxgan serve demo --lpips L`: each session equals `jaxgan invert`
(`invert.invert_images`, the same seed) for its photo, whatever runs beside it."""

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.helpers import (ServerProcess, assert_refused, lpips_alex_checkpoint, lpips_checkpoint, png_data_url,
                           wait_session_end)

http = httpx.Client(timeout=120)  # the first request of a kind waits for its compilation

STEPS = 4


@pytest.fixture(scope="module")
def lpips_dir(tmp_path_factory):
    return lpips_checkpoint(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def server(lpips_dir):
    proc = ServerProcess("demo", "--lpips", str(lpips_dir), "--max-sessions", "8", "--max-batch", "2")
    yield proc
    assert proc.stop() == 0, proc.output()


@pytest.fixture(scope="module")
def photos():
    """Two 48x40 RGB photos: the bundled model's images of seeds 5 and 6, enlarged and padded (so the loader's
    centre crop and resize matter)."""
    from jaxgan.checkpoint import load_model
    from jaxgan.demo import bundled_checkpoint
    from jaxgan.sampling import GenerationOptions, generate_images, to_uint8, z_from_seeds
    G = load_model(bundled_checkpoint(), "stylegan2-generator", name="G")
    images = to_uint8(generate_images(G, z=z_from_seeds([5, 6], 64), c=np.zeros((2, 0), np.float32),
                                      options=GenerationOptions(truncation_psi=0.7)))
    photos = []
    for image in images:
        canvas = np.zeros((40, 48, 3), np.uint8)
        canvas[:, 4:44] = np.asarray(Image.fromarray(image).resize((40, 40), Image.BICUBIC))
        photos.append(canvas)
    return G, photos


@pytest.mark.slow  # a longer check that CI skips (`pytest -m slow` runs it)
def test_inversions_side_by_side_equal_jaxgan_invert(server, photos, lpips_dir):
    from jaxgan.checkpoint import load_model
    from jaxgan.edit import invert
    from jaxgan.images import target_of
    G, images = photos
    lpips = load_model(lpips_dir, "lpips")
    requests = [{"space": "w", "seed": 3}, {"space": "w+", "seed": 0}, {"space": "w", "seed": 0}]
    created = [http.post(server.url + "/api/invert", json={"model": "demo", "image": png_data_url(images[i % 2]),
                                                            "steps": STEPS, **r}).json()
               for i, r in enumerate(requests)]
    statuses = [wait_session_end(server.url, "invert", c["id"], timeout=180) for c in created]
    for i, (request, status) in enumerate(zip(requests, statuses)):
        assert status["state"] == "done" and status["step"] == invert.updates_for(request["space"], STEPS)
        cfg = invert.METHODS[request["space"]][3](steps=STEPS)
        # the photo read as `jaxgan invert` reads it for that method (w: centre crop, w+: the whole image)
        target = target_of(Image.fromarray(images[i % 2]), 32, fit=cfg.image_fit)
        want = invert.invert_images(G, lpips, [target], space=request["space"], cfg=cfg, seed=request["seed"])
        latent = np.load(io.BytesIO(http.get(f"{server.url}/api/invert/{status['id']}/latent.npy").content))
        np.testing.assert_allclose(latent, want["ws"][0], atol=1e-4, rtol=0)
        assert status["metrics"]["lpips"] == pytest.approx(float(want["lpips"][0]), abs=1e-4)
        recon = np.asarray(Image.open(io.BytesIO(
            http.get(f"{server.url}/api/invert/{status['id']}/reconstruction.png").content)))
        assert recon.shape == (32, 32, 3)
    for c in created:
        assert http.delete(f"{server.url}/api/invert/{c['id']}").status_code == 200


def test_results_before_done_are_409_and_a_stopped_inversion_resumes(server, photos):
    _, images = photos
    sid = http.post(server.url + "/api/invert", json={"model": "demo", "image": png_data_url(images[0]),
                                                       "steps": 300}).json()["id"]
    stopped = http.post(f"{server.url}/api/invert/{sid}/stop").json()
    assert stopped["state"] == "stopped"
    assert http.get(f"{server.url}/api/invert/{sid}/latent.npy").status_code == 409
    assert http.post(f"{server.url}/api/invert/{sid}/resume").json()["state"] == "running"
    assert http.delete(f"{server.url}/api/invert/{sid}").status_code == 200
    bad = http.post(server.url + "/api/invert", json={"model": "demo", "image": png_data_url(images[0]), "steps": 5000})
    assert bad.status_code == 400 and "cap" in bad.json()["error"]


def test_pti_needs_the_alexnet_lpips_and_says_so(server, photos):
    _, images = photos
    assert "pti" not in http.get(server.url + "/api/models").json()[0]["capabilities"]
    response = http.post(server.url + "/api/invert", json={"model": "demo", "image": png_data_url(images[0]),
                                                           "method": "pti"})
    assert response.status_code == 400
    assert "restart jaxgan serve with --lpips and --lpips-alex" in response.json()["error"]


def test_lpips_distance_equals_the_library(server, photos, lpips_dir):
    from jaxgan.checkpoint import load_model
    from jaxgan.models.lpips import lpips_distances
    _, images = photos
    got = http.post(server.url + "/api/lpips", json={"a": png_data_url(images[0]), "b": png_data_url(images[1])}).json()
    pm1 = np.stack(images).astype(np.float32) / np.float32(127.5) - 1
    want = lpips_distances(load_model(lpips_dir, "lpips"), pm1, [(0, 1)])[0]
    assert got["distance"] == pytest.approx(float(want), abs=1e-5)
    other = http.post(server.url + "/api/lpips", json={"a": png_data_url(images[0]), "b": png_data_url(images[0][:20])})
    assert other.status_code == 400 and "differ in size" in other.json()["error"]


def test_an_alexnet_lpips_is_refused_at_start(tmp_path_factory):
    # the server's inversion (projector, W+ embedding) and EditGAN losses are LPIPS (vgg)
    from click.testing import CliRunner

    from jaxgan.cli import main
    alex = lpips_alex_checkpoint(tmp_path_factory)[0]
    result = CliRunner().invoke(main, ["serve", "demo", "--lpips", str(alex)])
    assert_refused(result, f"the LPIPS checkpoint {alex} has the alex trunk; inversion and EditGAN need LPIPS (vgg)")
