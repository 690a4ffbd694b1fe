"""The HTTP and WebSocket API of `jaxgan serve` (FastAPI): validation, errors as `{"error": "one line"}`, auth.

Every route parses and checks its request, submits one function to the engine thread (`Engine.submit`) and awaits
it; no JAX work happens on the asyncio side. Status codes: 400 / 422 bad input, 401 no or wrong token, 404 unknown
model or session, 409 wrong state, 413 too large, 429 at capacity (with Retry-After), 503 stopping or timed out.
Bad input never gives a 5xx. The contract is documented in the README ("Serving").
"""

import asyncio
import json
import logging
import secrets
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from jaxgan.edit import drag_outputs
from jaxgan.latents import as_latents
from jaxgan.serve import uploads
from jaxgan.serve.config import ServeConfig
from jaxgan.serve.engine import AtCapacity, Engine, ShuttingDown, UnknownModel, UnknownSession
from jaxgan.serve.models import generation_rows
from jaxgan.serve.sessions import RUNNING, SessionStateError

log = logging.getLogger("jaxgan.serve")
STATIC_DIR = Path(__file__).parent / "static"  # the browser editor (package data)
RETRY_AFTER_S = 5
Pair = list[int]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class GenerateRequest(Strict):
    model: str
    seeds: list[int] | None = None
    ws: list | str | None = None
    trunc: float = Field(default=1.0, allow_inf_nan=False)


class DragRequest(Strict):
    model: str
    seed: int | None = Field(default=None, ge=0, lt=2 ** 32)
    trunc: float | None = Field(default=None, allow_inf_nan=False)
    ws: list | str | None = None
    points: list[Pair]
    targets: list[Pair]
    mask: str | None = None
    space: Literal["w", "w+"] | None = None
    lr: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_steps: int | None = Field(default=None, ge=0)
    lambda_mask: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    r1: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    r2: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    feature_idx: int | None = Field(default=None, ge=0)


class InvertRequest(Strict):
    model: str
    image: str
    method: Literal["latent", "pti"] = "latent"  # pti: the latent (pivot), then the generator tuned on the photo
    space: Literal["w", "w+"] = "w"               # the latent's space (PTI: its pivot's)
    steps: int | None = Field(default=None, ge=1)  # latent only
    pivot_steps: int | None = Field(default=None, ge=0)  # pti only
    tune_steps: int | None = Field(default=None, ge=0)   # pti only
    seed: int = Field(default=0, ge=0, lt=2 ** 32)


class Start(Strict):
    model: str
    seed: int | None = Field(default=None, ge=0, lt=2 ** 32)
    trunc: float | None = Field(default=None, allow_inf_nan=False)
    ws: list | str | None = None


class SegmentRequest(Strict):
    model: str
    seeds: list[int] | None = None
    ws: list | str | None = None
    trunc: float = Field(default=1.0, allow_inf_nan=False)


class EditRequest(Start):
    target: str
    region: str
    steps: int = Field(default=30, ge=1)


class ApplyRequest(Start):
    vector: str | None = None
    vector_session: str | None = None
    class_ids: list[int] | None = None
    scale: float = Field(default=1.0, allow_inf_nan=False)
    steps: int = Field(default=0, ge=0)


class LPIPSRequest(Strict):
    a: str
    b: str


class ResumeRequest(Strict):
    points: list[Pair] | None = None
    targets: list[Pair] | None = None
    mask: str | None = None
    lr: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_steps: int | None = Field(default=None, ge=0)


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


STATUS_OF = [(uploads.UploadTooLarge, 413), (UnknownModel, 404), (UnknownSession, 404), (SessionStateError, 409),
             (AtCapacity, 429), (ShuttingDown, 503), (ValueError, 400), (TimeoutError, 503)]


def status_of(exc: Exception) -> int | None:
    return next((code for cls, code in STATUS_OF if isinstance(exc, cls)), None)


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413 before it is read whole."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers", [])).get(b"content-length")
        too_large = error(413, f"the request body is over {self.limit} bytes")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await too_large(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyTooLarge()
            return message
        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            await too_large(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class RevalidatedStatic(StaticFiles):
    """The editor's files, revalidated on every load (ETag / 304), so a browser never runs an older copy of the
    page's modules against a newer server."""

    cache_control = "no-cache"

    async def get_response(self, path, scope):
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = self.cache_control
        return response


def create_app(engine: Engine, cfg: ServeConfig) -> FastAPI:
    """The application over a started engine."""
    app = FastAPI(title="jaxgan serve", version="1", description="Batched GAN editing sessions (DragGAN, inversion) "
                  "and generation over the models this server loaded.")
    if cfg.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_methods=["*"],
                           allow_headers=["*"])
    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes)

    def authorised(headers, query) -> bool:
        if cfg.token is None:
            return True
        given = headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else query.get("token", "")
        return secrets.compare_digest(token.encode(), cfg.token.encode())

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if request.url.path.startswith("/api/") and not authorised(request.headers, request.query_params):
            return error(401, "missing or wrong token: send 'Authorization: Bearer TOKEN'")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = exc.errors()
        first = problems[0] if problems else {}
        if first.get("type") == "json_invalid":
            return error(400, f"malformed JSON: {first.get('ctx', {}).get('error', 'cannot parse the body')}")
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return error(422, f"{where}: {first.get('msg', 'invalid')}{more}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail))

    async def known(request: Request, exc: Exception):
        code = status_of(exc)
        headers = {"Retry-After": str(RETRY_AFTER_S)} if code in (429, 503) else None
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, TimeoutError):
            message = f"the engine did not answer within {cfg.request_timeout:g} s; retry later"
        return error(code, message, headers)

    for cls, _ in STATUS_OF:
        app.add_exception_handler(cls, known)

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        return error(500, f"internal error: {type(exc).__name__}")

    async def call(fn, *args):
        future = engine.submit(fn, *args)
        return await asyncio.wait_for(asyncio.wrap_future(future), cfg.request_timeout)

    def latents_of(model_name: str, value, what: str) -> np.ndarray:
        model = engine.model(model_name)
        g = model.G.config
        if isinstance(value, str):
            array = uploads.npy_from_bytes(uploads.data_url_bytes(value, what), what)
        else:
            try:
                array = np.asarray(value, np.float32)
            except (ValueError, TypeError):
                raise ValueError(f"{what} must be a nested list of numbers") from None
        return as_latents(array, g.num_ws, g.w_dim, source=what)

    def mask_of(model_name: str, value: str | None):
        if value is None:
            return None
        res = engine.model(model_name).G.config.img_resolution
        image = uploads.image_from_url(value, "the mask", cfg.max_image_pixels)
        return drag_outputs.mask_of(image, res, "the mask")

    # -- reports --------------------------------------------------------------------------------------------------

    @app.get("/api/health")
    async def health():
        return engine.health()

    @app.get("/api/models")
    async def models():
        return [model.describe() for model in engine.listed_models()]

    @app.get("/api/models/{name}")
    async def model_description(name: str):
        return engine.model(name).describe()  # listed or not: a PTI session's tuned generator too

    @app.get("/api/stats")
    async def stats():
        return engine.stats()

    # -- stateless ------------------------------------------------------------------------------------------------

    @app.post("/api/generate")
    async def generate(body: GenerateRequest):
        model = engine.model(body.model)
        if (body.seeds is None) == (body.ws is None):
            raise ValueError("give exactly one of 'seeds' and 'ws'")
        if body.seeds is not None:
            if not body.seeds or len(body.seeds) > cfg.max_seeds:
                raise ValueError(f"'seeds' must hold 1 to {cfg.max_seeds} seeds")
            if any(s < 0 or s >= 2 ** 32 for s in body.seeds):
                raise ValueError("seeds must be integers in [0, 2**32)")
            rows = generation_rows(model.G, seeds=body.seeds, trunc=body.trunc)
        else:
            ws = latents_of(body.model, body.ws, "'ws'")
            if len(ws) > cfg.max_seeds:
                raise ValueError(f"'ws' holds {len(ws)} latents, at most {cfg.max_seeds}")
            rows = generation_rows(model.G, ws=ws)
        from concurrent.futures import Future
        result: Future = Future()
        await call(engine.generate, body.model, rows, result)
        out = await asyncio.wait_for(asyncio.wrap_future(result), cfg.request_timeout)
        images = await asyncio.to_thread(lambda: [uploads.png_data_url(p) for p in out["pixels"]])
        return {"images": images, "ws": np.round(out["ws"].astype(np.float64), 7).tolist()}

    # -- drag sessions --------------------------------------------------------------------------------------------

    @app.post("/api/drag", status_code=201)
    async def create_drag(body: DragRequest):
        request = body.model_dump()
        if (body.seed is None) == (body.ws is None):
            raise ValueError("give exactly one of 'seed' and 'ws'")
        if body.ws is not None:
            if body.trunc is not None:
                raise ValueError("'trunc' applies to 'seed', not to 'ws'")
            ws = latents_of(body.model, body.ws, "'ws'")
            if len(ws) != 1:
                raise ValueError(f"'ws' holds {len(ws)} latents; a drag starts from one")
            request["ws"] = ws[0]
        mask = mask_of(body.model, body.mask)
        return await call(engine.create_drag, body.model, request, mask)

    @app.post("/api/drag/{sid}/resume")
    async def drag_resume(sid: str, request: Request):
        raw = await request.body()
        body = ResumeRequest.model_validate_json(raw) if raw.strip() else ResumeRequest()
        session = await call(engine.session, sid, "drag")
        changes = body.model_dump(exclude_none=True)
        if "mask" in changes:
            changes["mask"] = mask_of(session.model, changes["mask"])
        if changes.get("max_steps", 0) > cfg.max_steps:
            raise ValueError(f"max_steps {changes['max_steps']} is over this server's cap of {cfg.max_steps}")
        return await call(engine.resume_drag, sid, changes)

    @app.post("/api/drag/{sid}/undo")
    async def drag_undo(sid: str):
        return await call(engine.undo_drag, sid)

    @app.get("/api/drag/{sid}/image.png")
    async def drag_image(sid: str):
        pixels = await call(engine.drag_image, sid)
        return Response(await asyncio.to_thread(uploads.png_bytes, pixels), media_type="image/png")

    @app.get("/api/drag/{sid}/mask.png")
    async def drag_mask(sid: str):
        mask = await call(engine.drag_mask, sid)
        return Response(await asyncio.to_thread(uploads.png_bytes, mask[..., None]), media_type="image/png")

    @app.get("/api/drag/{sid}/latent.npy")
    async def drag_latent(sid: str):
        latent = await call(engine.drag_latent, sid)
        return Response(npy_bytes(latent), media_type="application/octet-stream",
                        headers={"Content-Disposition": 'attachment; filename="drag_ws.npy"'})

    @app.get("/api/drag/{sid}/trace.npz")
    async def drag_trace(sid: str):
        session = await call(engine.session, sid, "drag")
        data = await asyncio.to_thread(session.trace_file)
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": 'attachment; filename="drag_trace.npz"'})

    @app.get("/api/drag/{sid}/drag.gif")
    async def drag_gif(sid: str):
        session = await call(engine.session, sid, "drag")
        return Response(await asyncio.to_thread(session.gif_file), media_type="image/gif")

    async def session_events(websocket: WebSocket, sid: str, kind: str):
        """`{"type": "status", ...}`, then one JSON message per step of the current run (with `replay=1`, the
        default, the steps taken before the client connected come first, so none is missed), the image as a PNG
        data URL every `image_every` steps (0 = never) and on the last, then `{"type": "end", ...}`. A client that
        disconnects only stops listening."""
        if not authorised(websocket.headers, websocket.query_params):
            await websocket.close(code=4401, reason="missing or wrong token")
            return
        await websocket.accept()
        try:
            every = int(websocket.query_params.get("image_every", "1"))
            replay = int(websocket.query_params.get("replay", "1"))
            if every < 0 or replay not in (0, 1):
                raise ValueError
        except ValueError:
            await websocket.send_json({"type": "error", "error": "image_every must be an integer >= 0 and replay "
                                                                 "0 or 1"})
            await websocket.close(code=4400)
            return
        try:
            session = await call(engine.session, sid, kind)
        except UnknownSession as e:
            await websocket.send_json({"type": "error", "error": str(e)})
            await websocket.close(code=4404)
            return
        events: asyncio.Queue = asyncio.Queue()
        history = session.subscribe(asyncio.get_running_loop(), events)
        seen = (history[-1]["run"], history[-1]["index"]) if history else (session.run_number, -1)

        async def send(event: dict) -> None:
            message = dict(event)
            image = message.pop("image", None)
            last = message.pop("last", False)
            if message["type"] == "step" and image is not None and every and (message["index"] % every == 0
                                                                               or last):
                message["image"] = await asyncio.to_thread(uploads.png_data_url, image)
            await websocket.send_text(json.dumps(message))
        try:
            await websocket.send_json({"type": "status", **session.status()})
            if replay:
                for event in history:
                    await send(event)
            if session.state != RUNNING and events.empty():
                await websocket.send_json({"type": "end", **session.status()})
                await websocket.close()
                return
            while True:
                event = await events.get()
                if event["type"] == "step" and (event["run"], event["index"]) <= seen:
                    continue  # already sent from the history
                await send(event)
                if event["type"] == "end":
                    break
            await websocket.close()
        except WebSocketDisconnect:
            pass
        finally:
            session.unsubscribe(events)

    # -- inversion sessions ---------------------------------------------------------------------------------------

    def target_of(model_name: str, value: str, fit: str) -> np.ndarray:
        from jaxgan.images import target_of as load_target
        g = engine.model(model_name).G.config
        image = uploads.image_from_url(value, "the image", cfg.max_image_pixels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a dropped alpha channel is what the command line does too
            return load_target(image, g.img_resolution, g.img_channels, "the image", fit=fit)

    @app.post("/api/invert", status_code=201)
    async def create_invert(body: InvertRequest):
        from jaxgan.edit.invert import METHODS
        if body.method == "latent":
            if body.pivot_steps is not None or body.tune_steps is not None:
                raise ValueError("pivot_steps and tune_steps go with method 'pti'; a latent inversion takes steps")
            target = await asyncio.to_thread(target_of, body.model, body.image, METHODS[body.space][3].image_fit)
            return await call(engine.create_invert, body.model, target, body.space, body.steps, body.seed)
        from jaxgan.edit.pti import PTIConfig
        if body.steps is not None:
            raise ValueError("a PTI inversion takes pivot_steps and tune_steps, not steps")
        pti_cfg = PTIConfig(pivot_space=body.space, **{k: v for k, v in (("pivot_steps", body.pivot_steps),
                                                                          ("tune_steps", body.tune_steps))
                                                         if v is not None})
        target = await asyncio.to_thread(target_of, body.model, body.image, pti_cfg.image_fit)
        return await call(engine.create_pti, body.model, target, pti_cfg, body.seed)

    @app.get("/api/invert/{sid}/latent.npy")
    async def invert_latent(sid: str):
        result = await call(engine.invert_result, sid)
        return Response(npy_bytes(result["ws"]), media_type="application/octet-stream",
                        headers={"Content-Disposition": 'attachment; filename="inverted_ws.npy"'})

    @app.get("/api/invert/{sid}/reconstruction.png")
    async def invert_image(sid: str):
        from jaxgan.sampling import to_uint8
        result = await call(engine.invert_result, sid)
        return Response(await asyncio.to_thread(uploads.png_bytes, to_uint8(result["image"])), media_type="image/png")

    # -- EditGAN --------------------------------------------------------------------------------------------------

    def one_start(body: Start) -> dict:
        """{"seed", "trunc"} or {"ws": [num_ws, w_dim]} of a request that starts from one latent."""
        if (body.seed is None) == (body.ws is None):
            raise ValueError("give exactly one of 'seed' and 'ws'")
        if body.ws is None:
            return {"seed": body.seed, "trunc": drag_job_trunc() if body.trunc is None else body.trunc}
        if body.trunc is not None:
            raise ValueError("'trunc' applies to 'seed', not to 'ws'")
        ws = latents_of(body.model, body.ws, "'ws'")
        if len(ws) != 1:
            raise ValueError(f"'ws' holds {len(ws)} latents; give one")
        return {"ws": ws[0]}

    @app.post("/api/segment")
    async def segment(body: SegmentRequest):
        from concurrent.futures import Future
        from jaxgan.edit import editgan_outputs
        from jaxgan.sampling import to_uint8
        model = engine.model(body.model)
        if (body.seeds is None) == (body.ws is None):
            raise ValueError("give exactly one of 'seeds' and 'ws'")
        if body.seeds is not None:
            if not body.seeds or len(body.seeds) > cfg.max_seeds or any(s < 0 or s >= 2 ** 32 for s in body.seeds):
                raise ValueError(f"'seeds' must hold 1 to {cfg.max_seeds} seeds in [0, 2**32)")
            rows = generation_rows(model.G, seeds=body.seeds, trunc=body.trunc)
        else:
            rows = generation_rows(model.G, ws=latents_of(body.model, body.ws, "'ws'")[:cfg.max_seeds])
        result: Future = Future()
        await call(engine.segment, body.model, rows, result)
        out = await asyncio.wait_for(asyncio.wrap_future(result), cfg.request_timeout)
        n = model.seg.config.num_classes

        def encode():
            return {"images": [uploads.png_data_url(p) for p in to_uint8(out["images"])],
                    "labels": [uploads.png_data_url(l.astype(np.uint8)[..., None]) for l in out["labels"]],
                    "colors": [uploads.png_data_url(editgan_outputs.colorize(l, n)) for l in out["labels"]],
                    "uncertainty": [float(u) for u in out["uncertainty"]],
                    "ws": np.round(np.asarray(out["ws"], np.float64), 7).tolist(), "num_classes": n}
        return await asyncio.to_thread(encode)

    def edit_inputs(body: EditRequest) -> dict:
        from jaxgan.edit import editgan_outputs
        model = engine.model(body.model)
        if model.seg is None:
            raise ValueError(f"model {body.model!r} is served without a segmentation branch")
        res = model.G.config.img_resolution
        target = editgan_outputs.labels_of(uploads.image_from_url(body.target, "the target", cfg.max_image_pixels),
                                           model.seg.config.num_classes, res, "the target segmentation")
        region = editgan_outputs.region_of(uploads.image_from_url(body.region, "the region", cfg.max_image_pixels),
                                           res, "the edit region")
        return {"target": target, "region": region, "steps": body.steps}

    @app.post("/api/editgan/edit", status_code=201)
    async def editgan_edit(body: EditRequest):
        start = one_start(body)
        fields = await asyncio.to_thread(edit_inputs, body)
        return await call(engine.create_editgan, body.model, "edit", start, fields)

    def vector_from_url(model_name: str, value: str):
        import os
        import tempfile
        from jaxgan.edit import editgan_outputs
        model = engine.model(model_name)
        g = model.G.config
        data = uploads.data_url_bytes(value, "the vector")
        fd, path = tempfile.mkstemp(suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            num_classes = None if model.seg is None else model.seg.config.num_classes
            try:
                vector, class_ids, _ = editgan_outputs.load_edit_vector(path, g.num_ws, g.w_dim, num_classes)
            except ValueError as e:
                raise ValueError(str(e).replace(path, "the vector")) from None
        finally:
            os.unlink(path)
        return vector, class_ids

    @app.post("/api/editgan/apply", status_code=201)
    async def editgan_apply(body: ApplyRequest):
        start = one_start(body)
        if (body.vector is None) == (body.vector_session is None):
            raise ValueError("give exactly one of 'vector' (an edit-vector .npz as a data URL) and 'vector_session' "
                             "(the id of a finished edit session)")
        if body.vector is not None:
            vector, class_ids = await asyncio.to_thread(vector_from_url, body.model, body.vector)
        else:
            vector, class_ids = await call(engine.vector_of, body.vector_session)
        class_ids = body.class_ids if body.class_ids is not None else class_ids
        fields = {"vector": vector, "class_ids": class_ids, "scale": body.scale, "steps": body.steps}
        return await call(engine.create_editgan, body.model, "apply", start, fields)

    @app.get("/api/editgan/{sid}/{name}")
    async def editgan_file(sid: str, name: Literal["image.png", "before.png", "labels.png", "seg.png",
                                                   "latent.npy", "vector.npz"]):
        from jaxgan.edit import editgan_outputs
        from jaxgan.sampling import to_uint8
        session, result = await call(engine.editgan_result, sid)
        n = engine.models[session.model].seg.config.num_classes

        def render() -> tuple[bytes, str]:
            if name == "image.png":
                return uploads.png_bytes(to_uint8(result["image"])), "image/png"
            if name == "before.png":
                return uploads.png_bytes(to_uint8(session.images_before)), "image/png"
            if name == "labels.png":
                return uploads.png_bytes(result["labels"].astype(np.uint8)[..., None]), "image/png"
            if name == "seg.png":
                return uploads.png_bytes(editgan_outputs.colorize(result["labels"], n)), "image/png"
            if name == "latent.npy":
                return npy_bytes(result["ws"]), "application/octet-stream"
            if session.mode != "edit":
                raise SessionStateError("only edit sessions have an edit vector")
            return session.vector_file(), "application/octet-stream"
        data, media = await asyncio.to_thread(render)
        return Response(data, media_type=media)

    @app.post("/api/lpips")
    async def lpips_distance(body: LPIPSRequest, model: str | None = None):
        name = model or next(iter(engine.models))

        def load(value, what):
            image = uploads.image_from_url(value, what, cfg.max_image_pixels)
            return np.asarray(image.convert("RGB"), np.float32) / np.float32(127.5) - np.float32(1)
        a, b = await asyncio.to_thread(lambda: (load(body.a, "image a"), load(body.b, "image b")))
        if a.shape != b.shape:
            raise ValueError(f"the images differ in size: {a.shape[1]}x{a.shape[0]} and {b.shape[1]}x{b.shape[0]}")
        from concurrent.futures import Future
        result: Future = Future()
        await call(engine.lpips, name, {"a": a[None], "b": b[None]}, result)
        out = await asyncio.wait_for(asyncio.wrap_future(result), cfg.request_timeout)
        return {"distance": float(out["distance"][0])}

    # -- what every session kind has: status, stop, delete, events; resume for the fixed-step kinds ---------------

    def session_routes(kind: str, resumable: bool) -> None:
        async def status(sid: str):
            return await call(engine.status_of, sid, kind)

        async def stop(sid: str):
            return await call(engine.stop_session, sid, kind)

        async def resume(sid: str):
            return await call(engine.resume_stepped, sid, kind)

        async def delete(sid: str):
            return await call(engine.delete_session, sid, kind)

        async def events(websocket: WebSocket, sid: str):
            await session_events(websocket, sid, kind)

        base = f"/api/{kind}/{{sid}}"
        app.add_api_route(base, status, methods=["GET"], name=f"{kind}_status")
        app.add_api_route(base + "/stop", stop, methods=["POST"], name=f"{kind}_stop")
        if resumable:
            app.add_api_route(base + "/resume", resume, methods=["POST"], name=f"{kind}_resume")
        app.add_api_route(base, delete, methods=["DELETE"], name=f"{kind}_delete")
        app.add_api_websocket_route(base + "/events", events, name=f"{kind}_events")

    session_routes("drag", resumable=False)  # a drag resumes with new points: its own route above
    session_routes("invert", resumable=True)
    session_routes("editgan", resumable=True)

    # -- the browser editor: static files of this package, no build step ----------------------------------------

    app.mount("/static", RevalidatedStatic(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": RevalidatedStatic.cache_control})

    @app.get("/api", include_in_schema=False)
    async def api_index():
        return {"service": "jaxgan serve", "editor": "/", "api": "/api/health", "docs": "/docs"}

    return app


def drag_job_trunc() -> float:
    from jaxgan.edit.drag import DragJob
    return DragJob.trunc


def npy_bytes(array) -> bytes:
    import io
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, np.float32))
    return buffer.getvalue()
