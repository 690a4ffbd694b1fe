"""`jaxgan serve`: one long-lived server that batches many users' editing sessions into one compiled step.

- `config.ServeConfig`: every setting and its default (the CLI reads them from there);
- `scheduler.BucketPolicy`: which batch size to run, from measured session-steps/s per power-of-two bucket;
- `pool.Pool`: sessions of one (model, kind, static config) stacked on the devices and advanced together;
- `drag_sessions`, `invert_sessions`: the session kinds (their state, step and files);
- `batcher.Batcher`: dynamic batching of stateless requests (generate, LPIPS distance);
- `engine.Engine`: the one thread that runs all JAX work, the session table, capacity and expiry;
- `uploads`: decoding what clients send (PNG / JPEG data URLs and `.npy`, with size limits, never pickle);
- `app.create_app`: the FastAPI application (the HTTP and WebSocket API), `server.serve`: uvicorn around it.

Step-level ("continuous") batching as LLM servers do it: sessions join and leave a running batch at step
boundaries, and a session's numbers do not depend on what it is batched with.
"""
