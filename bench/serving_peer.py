"""The peer `taxifare serve` is measured against: the same Predictor behind uvicorn + Starlette.

    python -m bench.serving_peer --model-dir DIR [--port 0]

What a straightforward service would be: Starlette's request.json(), the same instance check
(`trainer.predict.check_instances`), the model called in Starlette's thread pool, one call per
request, answers through JSONResponse; uvicorn with httptools and uvloop, one TensorFlow thread,
as `taxifare serve` runs by default. It prints "listening on http://HOST:PORT" like the server.
"""

from __future__ import annotations

import argparse
import socket
import sys

from taxifare.errors import InstanceError
from trainer.predict import Predictor, check_instances, format_predictions


def make_app(model_dir: str):  # -> starlette.applications.Starlette
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    predictor = Predictor(model_dir)
    version = predictor.model_dir.rstrip("/").rsplit("/", 1)[-1]

    async def predict(request: Request) -> JSONResponse:
        try:
            body = await request.json()
            raw, keys = check_instances(body["instances"])
        except InstanceError as err:
            return JSONResponse({"error": {"code": 400, "message": str(err)}}, status_code=400)
        except (ValueError, KeyError, TypeError) as err:
            return JSONResponse({"error": {"code": 400, "message": str(err)}}, status_code=400)
        fares = await run_in_threadpool(predictor.predict, raw)
        return JSONResponse({"predictions": format_predictions(fares, keys), "modelVersionId": version})

    async def ready(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ready", "modelVersionId": version})

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health/ready", ready)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--model-dir", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    import uvicorn

    from taxifare.serving.model import configure_tensorflow

    configure_tensorflow(1)
    app = make_app(args.model_dir)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    host, port = sock.getsockname()[:2]
    print(f"uvicorn + starlette: listening on http://{host}:{port}", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, loop="uvloop", http="httptools", log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
