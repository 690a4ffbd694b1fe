"""PTI sessions through `jaxgan serve demo --lpips L --lpips-alex A`: each equals `jaxgan invert --method pti`
(`pti.pti_images`, the same seed) for its photo, whatever runs beside it, and its tuned generator is served as a
model of its own (generate, drag), unlisted, until its session and every session using it are gone."""

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.helpers import (ServerProcess, fixture_path, lpips_alex_checkpoint, lpips_checkpoint, png_data_url,
                           png_pixels, wait_session_end)

http = httpx.Client(timeout=120)  # the first request of a kind waits for its compilation

PIVOT_STEPS, TUNE_STEPS = 3, 4


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    return lpips_checkpoint(tmp_path_factory)[0], lpips_alex_checkpoint(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def server(networks):
    vgg, alex = networks
    proc = ServerProcess("demo", "--lpips", str(vgg), "--lpips-alex", str(alex), "--max-sessions", "8",
                         "--max-batch", "2")
    yield proc
    assert proc.stop() == 0, proc.output()


@pytest.fixture(scope="module")
def photos():
    """A real photo (the fixtures' chelsea.png, 451x300: PTI's centre crop and resize matter), and a 40x48 one of
    the bundled model's face of seed 5, enlarged and padded (close to the model: its first forward may already be
    under the LPIPS threshold)."""
    from jaxgan.checkpoint import load_model
    from jaxgan.demo import bundled_checkpoint
    from jaxgan.sampling import GenerationOptions, generate_images, to_uint8, z_from_seeds
    G = load_model(bundled_checkpoint(), "stylegan2-generator", name="G")
    face = to_uint8(generate_images(G, z=z_from_seeds([5], 64), c=np.zeros((1, 0), np.float32),
                                    options=GenerationOptions(truncation_psi=0.7)))[0]
    canvas = np.full((40, 48, 3), 20, np.uint8)
    canvas[:, 4:44] = np.asarray(Image.fromarray(face).resize((40, 40), Image.BICUBIC))
    photo = np.asarray(Image.open(fixture_path("images/chelsea.png")).convert("RGB"))
    return G, [photo, canvas]


def served(url, name) -> bool:
    return http.get(f"{url}/api/models/{name}").status_code == 200


@pytest.mark.slow  # 115 s on 2 cores; CI keeps the editor's PTI-then-drag test
def test_pti_sessions_side_by_side_equal_jaxgan_invert_and_serve_their_generators(server, photos, networks):
    from jaxgan.checkpoint import load_model
    from jaxgan.edit import pti
    from jaxgan.images import target_of
    G, images = photos
    seeds = (3, 0)
    created = [http.post(server.url + "/api/invert", json={
        "model": "demo", "image": png_data_url(images[i]), "method": "pti", "pivot_steps": PIVOT_STEPS,
        "tune_steps": TUNE_STEPS, "seed": seed}) for i, seed in enumerate(seeds)]
    assert [c.status_code for c in created] == [201, 201], [c.text for c in created]
    assert created[0].json()["phase"] == "pivot" and created[0].json()["max_steps"] == PIVOT_STEPS + TUNE_STEPS
    statuses = [wait_session_end(server.url, "invert", c.json()["id"]) for c in created]

    cfg = pti.PTIConfig(pivot_steps=PIVOT_STEPS, tune_steps=TUNE_STEPS)
    lpips, alex = (load_model(path, "lpips") for path in networks)
    for i, (seed, status) in enumerate(zip(seeds, statuses)):
        assert status["state"] == "done" and status["method"] == "pti" and status["phase"] == "tuning", status
        # the photo read as `jaxgan invert --method pti` reads it (PTI: centre crop, then resize)
        target = target_of(Image.fromarray(images[i]), 32, fit=cfg.image_fit)
        want = pti.pti_images(G, lpips, alex, [target], cfg=cfg, seed=seed)
        latent = np.load(io.BytesIO(http.get(f"{server.url}/api/invert/{status['id']}/latent.npy").content))
        np.testing.assert_allclose(latent, want["ws"][0], atol=1e-5, rtol=0)
        assert status["tuning_updates"] == int(want["updates"][0])
        for key in ("lpips", "lpips_alex", "psnr"):
            assert status["metrics"][key] == pytest.approx(float(want["after"][key][0]), abs=1e-4), key
            assert status["metrics_before"][key] == pytest.approx(float(want["before"][key][0]), abs=1e-4), key

        # the tuned generator is a model of its own: its image of the pivot is the reconstruction
        name = status["tuned_model"]
        assert status["id"] not in name  # its own token: knowing the model does not give the session
        described = http.get(f"{server.url}/api/models/{name}").json()
        assert described["derived_from"] == "demo" and "drag" in described["capabilities"]
        recon = png_pixels(http.get(f"{server.url}/api/invert/{status['id']}/reconstruction.png").content)
        generated = http.post(server.url + "/api/generate", json={"model": name, "ws": latent[None].tolist()})
        pixels = png_pixels(generated.json()["images"][0])
        assert np.abs(pixels.astype(np.int16) - recon).max() <= 1
        original = http.post(server.url + "/api/generate", json={"model": "demo", "ws": latent[None].tolist()})
        assert (original.json()["images"][0] != generated.json()["images"][0]) == (status["tuning_updates"] > 0)

    # tuned generators are served but not listed: other users of the server neither see nor reach them
    assert [m["name"] for m in http.get(server.url + "/api/models").json()] == ["demo"]
    assert http.get(server.url + "/api/health").json()["models"] == ["demo"]
    unknown = http.post(server.url + "/api/generate", json={"model": "nope", "seeds": [0]}).json()["error"]
    assert "~pti-" not in unknown

    # the photo is far from the model: every forward is over the threshold, and tuning improves the reconstruction
    assert statuses[0]["tuning_updates"] == TUNE_STEPS
    assert statuses[0]["metrics"]["psnr"] > statuses[0]["metrics_before"]["psnr"]
    assert statuses[0]["metrics"]["lpips_alex"] < statuses[0]["metrics_before"]["lpips_alex"]

    # a drag on a tuned generator keeps it served after its PTI session is deleted, until the drag is gone too
    first, second = statuses
    pivot = np.load(io.BytesIO(http.get(f"{server.url}/api/invert/{first['id']}/latent.npy").content))
    drag = http.post(server.url + "/api/drag", json={"model": first["tuned_model"], "ws": pivot[None].tolist(),
                                                     "points": [[20, 10]], "targets": [[20, 7]], "max_steps": 2})
    assert drag.status_code == 201, drag.text
    assert wait_session_end(server.url, "drag", drag.json()["id"])["state"] == "done"
    assert http.delete(f"{server.url}/api/invert/{first['id']}").status_code == 200
    assert http.delete(f"{server.url}/api/invert/{second['id']}").status_code == 200
    assert served(server.url, first["tuned_model"]) and not served(server.url, second["tuned_model"])
    assert http.delete(f"{server.url}/api/drag/{drag.json()['id']}").status_code == 200
    assert not served(server.url, first["tuned_model"])
    gone = http.post(server.url + "/api/generate", json={"model": first["tuned_model"], "seeds": [0]})
    assert gone.status_code == 404 and "unknown model" in gone.json()["error"]


def test_pti_requests_that_do_not_fit_are_400(server, photos):
    _, images = photos
    base = {"model": "demo", "image": png_data_url(images[0]), "method": "pti"}
    for extra, message in (({"steps": 5}, "not steps"), ({"tune_steps": 5000}, "cap"),
                           ({"pivot_steps": 5000}, "cap")):
        response = http.post(server.url + "/api/invert", json={**base, **extra})
        assert response.status_code == 400 and message in response.json()["error"], response.text
    latent = http.post(server.url + "/api/invert", json={**base, "method": "latent", "tune_steps": 3})
    assert latent.status_code == 400 and "go with method 'pti'" in latent.json()["error"]
    assert http.get(server.url + "/api/health").json()["sessions"]["live"] == 0
