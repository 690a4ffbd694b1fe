"""`jaxgan serve demo` end to end, started as a user starts it (a subprocess on loopback): the API contract, 16
concurrent drag clients each identical to its solo `jaxgan drag`, disconnects, bad input beside running sessions,
a failing session beside healthy ones."""

import asyncio
import base64
import io
import json

import httpx
import numpy as np
import pytest
import websockets
from PIL import Image

from tests.helpers import ServerProcess, png_data_url

http = httpx.Client(timeout=120)  # the first request of a kind waits for its compilation

MAX_SESSIONS = 24
H = 32  # the bundled model's resolution


@pytest.fixture(scope="module")
def server():
    proc = ServerProcess("demo", "--max-sessions", str(MAX_SESSIONS), "--max-steps", "400", "--max-batch", "4")
    yield proc
    assert proc.stop() == 0, proc.output()


@pytest.fixture(scope="module")
def demo_G():
    from jaxgan.checkpoint import load_model
    from jaxgan.demo import bundled_checkpoint
    return load_model(bundled_checkpoint(), "stylegan2-generator", name="G")


def solo_drag(G, **job):
    """What `jaxgan drag demo` computes for one session: its own config (max_points = its points), the
    checkpoint's recommended settings, `drag.run_jobs` on one device."""
    from jaxgan.checkpoint import read_sidecar
    from jaxgan.demo import bundled_checkpoint
    from jaxgan.edit import drag
    settings = drag.recommended_settings(read_sidecar(bundled_checkpoint()))
    lr = settings.pop("lr")
    cfg = drag.DragConfig.for_generator(G.config, max_points=len(job["points"]), **settings)
    job = drag.DragJob(**{"lr": lr, **job})
    return drag.run_jobs(G, cfg, [job])[0]


async def drag_and_watch(url, request, *, read=None):
    """POST a drag, follow its events to the end (or only `read` step events, then disconnect); returns (status
    of the creation, step events, end event or None)."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        created = await client.post("/api/drag", json=request)
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
    steps, end = [], None
    async with websockets.connect(url.replace("http", "ws") + f"/api/drag/{sid}/events?image_every=0") as ws:
        async for message in ws:
            event = json.loads(message)
            if event["type"] == "step":
                steps.append(event)
                if read is not None and len(steps) >= read:
                    break
            elif event["type"] == "end":
                end = event
                break
    return created.json(), steps, end


async def reattach_replaying(url, sid):
    async with websockets.connect(url.replace("http", "ws") + f"/api/drag/{sid}/events") as ws:
        return [json.loads(m) async for m in ws]


def delete_all(url, ids):
    for sid in ids:
        http.delete(f"{url}/api/drag/{sid}")


def test_health_and_models_describe_the_bundled_model(server):
    health = http.get(server.url + "/api/health").json()
    assert health["status"] == "ok" and health["models"] == ["demo"] and health["backend"] == "cpu"
    assert health["sessions"]["capacity"] == MAX_SESSIONS and health["devices"] >= 1
    (model,) = http.get(server.url + "/api/models").json()
    assert (model["name"], model["resolution"], model["num_ws"], model["w_dim"], model["c_dim"]) == ("demo", 32, 8, 64, 0)
    assert "drag" in model["capabilities"] and "generate" in model["capabilities"]
    # the drag defaults are those `jaxgan drag demo` takes: the checkpoint's recommended settings
    assert {k: model["drag_defaults"][k] for k in ("r1", "r2", "feature_idx", "lr")} == {
        "r1": 16.0, "r2": 48.0, "feature_idx": 2, "lr": 0.01}
    assert http.get(server.url + "/docs").status_code == 200


def test_generate_gives_the_images_and_ws_of_the_library(server, demo_G):
    from jaxgan.edit.drag import start_latent
    from jaxgan.sampling import GenerationOptions, generate_images, to_uint8, z_from_seeds
    body = http.post(server.url + "/api/generate", json={"model": "demo", "seeds": [3, 11], "trunc": 0.7}).json()
    got = np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1])))) for u in body["images"]])
    want = to_uint8(generate_images(demo_G, z=z_from_seeds([3, 11], 64), c=np.zeros((2, 0), np.float32),
                                    options=GenerationOptions(truncation_psi=0.7)))
    assert got.shape == (2, H, H, 3)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    np.testing.assert_allclose(np.asarray(body["ws"])[1], start_latent(demo_G, 11, 0.7), atol=1e-5)
    # the ws come back as the image's latent: generating from them gives the same pixels
    again = http.post(server.url + "/api/generate", json={"model": "demo", "ws": body["ws"]}).json()
    assert again["images"] == body["images"]


@pytest.mark.slow  # a longer check that CI skips (`pytest -m slow` runs it)
def test_sixteen_concurrent_clients_each_match_their_solo_drag(server, demo_G):
    jobs = [{"seed": i % 5, "points": [[12 + i % 7, 10 + i % 5]], "targets": [[12 + i % 7, 6 + i % 3]],
             "max_steps": 25 + i} for i in range(16)]

    async def all_clients():
        return await asyncio.gather(*(drag_and_watch(server.url, {"model": "demo", **job}) for job in jobs))
    results = asyncio.run(all_clients())
    ids = [created["id"] for created, _, _ in results]
    try:
        for job, (created, steps, end) in zip(jobs, results):
            solo = solo_drag(demo_G, seed=job["seed"], points=tuple(map(tuple, job["points"])),
                             targets=tuple(map(tuple, job["targets"])), steps=job["max_steps"])
            served = np.array([s["points"] for s in steps])
            np.testing.assert_array_equal(served, solo.trace["points"])  # tracked points identical, every step
            assert end["state"] == "done" and end["step"] == solo.steps_done
            assert end["stop_reason"] == ("reached targets" if solo.reached else "step limit")
            latent = np.load(io.BytesIO(http.get(f"{server.url}/api/drag/{created['id']}/latent.npy").content))
            np.testing.assert_allclose(latent, solo.final_ws, atol=1e-4, rtol=0)
        trace = np.load(io.BytesIO(http.get(f"{server.url}/api/drag/{ids[0]}/trace.npz").content))
        assert trace["points"].shape == (len(results[0][1]), 1, 2)
        stats = http.get(server.url + "/api/stats").json()
        assert stats["ticks"] > 0 and stats["pools"]
    finally:
        delete_all(server.url, ids)


def test_a_client_that_disconnects_does_not_stop_its_session(server):
    created, steps, end = asyncio.run(drag_and_watch(
        server.url, {"model": "demo", "seed": 0, "points": [[20, 10]], "targets": [[20, 6]], "max_steps": 60},
        read=3))
    assert end is None and len(steps) == 3
    sid = created["id"]
    for _ in range(200):
        status = http.get(f"{server.url}/api/drag/{sid}").json()
        if status["state"] != "running":
            break
        asyncio.run(asyncio.sleep(0.1))
    assert status["state"] == "done" and status["step"] > 3
    # reattaching to a finished session gives its status and end at once

    async def reattach():
        async with websockets.connect(server.url.replace("http", "ws") + f"/api/drag/{sid}/events?replay=0") as ws:
            return [json.loads(m) async for m in ws]
    messages = asyncio.run(reattach())
    assert [m["type"] for m in messages] == ["status", "end"] and messages[-1]["state"] == "done"
    replayed = asyncio.run(reattach_replaying(server.url, sid))
    assert [m["type"] for m in replayed] == ["status"] + ["step"] * (status["step"] + 1) + ["end"]
    assert [m["index"] for m in replayed[1:-1]] == list(range(status["step"] + 1))
    assert all("image" in m for m in replayed[1:-1])
    assert http.delete(f"{server.url}/api/drag/{sid}").json() == {"id": sid, "deleted": True}
    assert http.get(f"{server.url}/api/drag/{sid}").status_code == 404


def test_stop_resume_undo_and_the_files(server, demo_G):
    url = server.url
    sid = http.post(url + "/api/drag", json={"model": "demo", "seed": 0, "points": [[20, 10]], "targets": [[20, 6]],
                                              "max_steps": 400, "lr": 0.001}).json()["id"]
    try:
        assert http.post(f"{url}/api/drag/{sid}/undo").status_code == 409  # running
        stopped = http.post(f"{url}/api/drag/{sid}/stop").json()
        assert stopped["state"] == "stopped" and stopped["stop_reason"] == "stopped by client"
        first = np.load(io.BytesIO(http.get(f"{url}/api/drag/{sid}/latent.npy").content))
        image = np.asarray(Image.open(io.BytesIO(http.get(f"{url}/api/drag/{sid}/image.png").content)))
        assert image.shape == (H, H, 3)
        # the image is that of the latent
        regenerated = http.post(url + "/api/generate", json={"model": "demo", "ws": first.tolist()}).json()
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(regenerated["images"][0].split(",")[1]))))
        assert np.abs(pixels.astype(int) - image.astype(int)).max() <= 1
        resumed = http.post(f"{url}/api/drag/{sid}/resume", json={"targets": [[20, 4]], "max_steps": 5}).json()
        assert resumed["state"] == "running" and resumed["targets"] == [[20, 4]]
        for _ in range(300):
            status = http.get(f"{url}/api/drag/{sid}").json()
            if status["state"] != "running":
                break
            asyncio.run(asyncio.sleep(0.05))
        assert status["state"] == "done" and status["step"] == 5
        after = np.load(io.BytesIO(http.get(f"{url}/api/drag/{sid}/latent.npy").content))
        assert not np.allclose(after, first)
        gif = Image.open(io.BytesIO(http.get(f"{url}/api/drag/{sid}/drag.gif").content))
        assert gif.n_frames == 6  # 5 updates and the closing observation
        undone = http.post(f"{url}/api/drag/{sid}/undo").json()
        assert undone["state"] == "stopped" and undone["stop_reason"] == "undone"
        back = np.load(io.BytesIO(http.get(f"{url}/api/drag/{sid}/latent.npy").content))
        np.testing.assert_array_equal(back, first)
    finally:
        delete_all(url, [sid])


def test_bad_requests_get_the_right_4xx_while_a_session_goes_on(server, demo_G):
    url = server.url
    job = {"seed": 1, "points": [[16, 16]], "targets": [[16, 11]], "max_steps": 40}
    sid = http.post(url + "/api/drag", json={"model": "demo", **job}).json()["id"]
    big = Image.new("L", (20_000, 20_000))
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    bomb = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    start = {"model": "demo", "seed": 0, "points": [[5, 5]], "targets": [[6, 6]]}
    cases = [
        (http.post(url + "/api/drag", content=b'{"model": "demo", "seed": ', headers={"content-type": "application/json"}), 400),
        (http.post(url + "/api/drag", json={**start, "mask": png_data_url(np.full((16, 16), 255))}), 400),
        (http.post(url + "/api/drag", json={**start, "points": [[5, 40]]}), 400),
        (http.post(url + "/api/drag", json={**start, "mask": bomb}), 413),
        (http.post(url + "/api/drag", json={**start, "model": "nope"}), 404),
        (http.post(url + "/api/drag", json={**start, "points": [[1, 1]] * 9, "targets": [[2, 2]] * 9}), 400),
        (http.post(url + "/api/drag", json={**start, "max_steps": 401}), 400),
        (http.post(url + "/api/drag", json={**start, "colour": "red"}), 422),
        (http.post(url + "/api/drag", json={**start, "ws": [[0.0] * 64]}), 400),  # both seed and ws
        (http.post(url + "/api/drag", json={**start, "mask": "data:image/png;base64,!!"}), 400),
        (http.post(url + "/api/generate", json={"model": "demo", "seeds": list(range(65))}), 400),
        (http.get(url + "/api/drag/nosuchsession"), 404),
        (http.post(url + "/api/drag", content=b"x" * (33 * 2 ** 20), headers={"content-type": "application/json"}), 413),
    ]
    for response, code in cases:
        assert response.status_code == code, (code, response.text)
        assert set(response.json()) == {"error"} and "\n" not in response.json()["error"]
    for _ in range(400):
        status = http.get(f"{url}/api/drag/{sid}").json()
        if status["state"] != "running":
            break
        asyncio.run(asyncio.sleep(0.05))
    solo = solo_drag(demo_G, seed=1, points=((16, 16),), targets=((16, 11),), steps=40)
    assert status["state"] == "done" and status["points"] == solo.trace["points"][-1].tolist()
    delete_all(url, [sid])


def test_a_failing_session_ends_failed_and_the_others_go_on(server, demo_G):
    good = {"model": "demo", "seed": 2, "points": [[10, 10]], "targets": [[10, 14]], "max_steps": 30}
    bad = {"model": "demo", "seed": 2, "points": [[10, 10]], "targets": [[30, 30]], "lr": 1e38, "max_steps": 30}

    async def both():
        return await asyncio.gather(drag_and_watch(server.url, good), drag_and_watch(server.url, bad))
    (g_created, g_steps, g_end), (b_created, b_steps, b_end) = asyncio.run(both())
    try:
        assert b_end["state"] == "failed" and "not finite" in b_end["error"]
        solo = solo_drag(demo_G, seed=2, points=((10, 10),), targets=((10, 14),), steps=30)
        assert g_end["state"] == "done"
        np.testing.assert_array_equal(np.array([s["points"] for s in g_steps]), solo.trace["points"])
        assert http.post(f"{server.url}/api/drag/{b_created['id']}/resume").status_code == 409
    finally:
        delete_all(server.url, [g_created["id"], b_created["id"]])


def test_a_mask_from_a_png_is_used(server):
    movable = np.zeros((H, H), np.uint8)
    movable[4:20, 4:20] = 255
    created = http.post(server.url + "/api/drag", json={
        "model": "demo", "seed": 0, "points": [[10, 10]], "targets": [[10, 13]], "max_steps": 3,
        "mask": png_data_url(movable)})
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    for _ in range(200):
        if http.get(f"{server.url}/api/drag/{sid}").json()["state"] != "running":
            break
        asyncio.run(asyncio.sleep(0.05))
    trace = np.load(io.BytesIO(http.get(f"{server.url}/api/drag/{sid}/trace.npz").content))
    assert trace["losses"].shape[1] == 3 and trace["losses"][0, 1] == 0  # mask term 0 at the reference step
    assert trace["losses"][1:, 1].max() > 0  # then the fixed region's change is penalised
    delete_all(server.url, [sid])


def test_inversion_without_lpips_says_which_files_to_convert(server):
    image = png_data_url(np.zeros((H, H, 3)))
    response = http.post(server.url + "/api/invert", json={"model": "demo", "image": image})
    assert response.status_code == 400
    assert "--lpips" in response.json()["error"] and "vgg16-397923af.pth" in response.json()["error"]
    assert "invert" not in http.get(server.url + "/api/models").json()[0]["capabilities"]


def test_editgan_without_a_segmentation_branch_says_how_to_get_one(server):
    response = http.post(server.url + "/api/segment", json={"model": "demo", "seeds": [0]})
    assert response.status_code == 400 and "--seg demo=SEG_CKPT" in response.json()["error"]
