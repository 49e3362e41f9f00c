"""Online prediction: `taxifare serve` (server.py, over protocol/body/batcher/model/app.py) and its client.

The server's defaults live here, TF-free, so `taxifare serve --help` shows them without loading the server.
"""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
# Vertex AI takes online prediction requests up to 1.5 MB ("the payload limit size (currently, 1.5MB)",
# gcloud ai endpoints predict; read as 10^6 bytes, the reading that never overshoots): the same default
# here, so a client that works locally works there.
# --max-body-bytes raises it for local use; the client splits batches to fit.
VERTEX_REQUEST_BYTES = 1_500_000
DEFAULT_MAX_BODY_BYTES = VERTEX_REQUEST_BYTES
DEFAULT_POLL_SECONDS = 0.5
DEFAULT_MAX_BATCH_ROWS = 16_384
# On SIGTERM, how long requests already arriving may take to be answered (Vertex AI waits 30 s).
DEFAULT_DRAIN_SECONDS = 20.0
# Slow clients: the head must arrive within this many seconds of its first byte, the body
# within this many of the head's end (else 408); answers a client leaves unread must move
# within this many (else the connection is dropped; not a flag); past this many open
# connections, the longest idle is closed, or 503 when none is idle.
DEFAULT_HEAD_SECONDS = 10.0
DEFAULT_BODY_SECONDS = 30.0
DEFAULT_SEND_SECONDS = 30.0
DEFAULT_MAX_CONNECTIONS = 512
