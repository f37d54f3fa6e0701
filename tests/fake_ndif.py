"""Stand-ins for NDIF in tests and benches: :class:`FakeNDIF`, nnsight's remote request format run against a separate
server model, and :class:`LoopbackNDIF`, NDIF's HTTP and websocket endpoints on 127.0.0.1, honest or hostile."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import linecache
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch


class FakeNDIF:
    """An nnsight backend standing in for NDIF: the request serialised as RemoteBackend sends it (zstd), rebuilt
    with every non-installed module hidden (repwidget is not importable) against the *server's* model, run there,
    and the saved values sent back as NDIF sends them (``torch.save``, zstd). ``sent`` / ``received``: bytes of each
    request and result on the wire; ``raw``: each result's bytes uncompressed; ``wire``: the last result's bytes.
    ``tamper``: a function given each result (``{"out": ...}``) before it is sent, to send a wrong one."""

    def __init__(self, server) -> None:
        from nnsight.intervention.backends.local import LocalSimulationBackend

        self.server = server
        self.sent: list[int] = []
        self.received: list[int] = []
        self.raw: list[int] = []
        self._hider = LocalSimulationBackend(server)
        self.wire = b""
        self.tamper = None

    def __call__(self, tracer) -> None:
        import zstandard
        from nnsight.ndif import pull_env
        from nnsight.schema.request import RequestModel
        from nnsight.tracing.tracer import _saves, push, save

        pull_env()
        blob = RequestModel.serialize(tracer, compress=True)
        self.sent.append(len(blob))
        filename = tracer.info.frame.f_code.co_filename
        kept = linecache.cache.get(filename)
        hidden = self._hider._hide_local_modules()
        try:
            restored = RequestModel.deserialize(blob, self.server._remoteable_persistent_objects(), compress=True)
        finally:
            self._hider._restore(hidden)
            linecache.cache.pop(filename, None) if kept is None else linecache.cache.__setitem__(filename, kept)
        restored.execute(restored.info.code)  # on the server's model and weights
        result = {k: v for k, v in restored.info.frame.f_locals.items() if id(v) in _saves()}
        if self.tamper is not None:
            self.tamper(result)
        buffer = io.BytesIO()
        torch.save(result, buffer)
        self.raw.append(len(buffer.getvalue()))
        wire = zstandard.ZstdCompressor(level=6).compress(buffer.getvalue())
        self.received.append(len(wire))
        self.wire = wire
        from repwidget.model.nnsight_remote import decode

        result = decode(wire, True, 1 << 30)  # as repwidget reads NDIF's results: tensors and containers only
        for value in result.values():
            save(value)
        push(tracer.info.frame, result)


class LoopbackNDIF(BaseHTTPRequestHandler):
    """NDIF's endpoints as nnsight's RemoteBackend uses them, on 127.0.0.1: a websocket at ``/subscribe`` that sends
    the session id and then the job's status, ``POST /request``, and ``GET /result`` (the download a COMPLETED status
    points to). Set per server by :func:`serving`: ``how`` (below), ``result`` (the bytes to send as the result),
    ``detail`` (a refusal's text).

    ``how``: ``"http"`` refuses the model over HTTP, ``"status"`` with an ERROR status; ``"download"`` /
    ``"frame"`` send ``result`` (a download, or a binary websocket frame as a pickled status); hostile:
    ``"silent"`` (the websocket never sends the session id), ``"trickle_handshake"`` (its handshake, a byte every
    0.2 s), ``"no_answer"`` (the POST is never answered),
    ``"no_status"`` (no status after the POST), ``"trickle"`` (the download, a byte every 0.2 s),
    ``"trickle_frame"`` (the binary frame, likewise), ``"trickle_post"`` (the POST's answer, likewise)."""

    how = "http"
    result = b""
    detail = "Model 'org/served-model' is not deployed on NDIF; see https://nnsight.net/status"
    protocol_version = "HTTP/1.1"  # what a websocket handshake answers in
    posted: threading.Event
    stop: threading.Event

    def log_message(self, *args) -> None:  # quiet
        pass

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError):  # a client that hangs up (as a timed-out one does)
            super().handle()

    def do_GET(self) -> None:
        if self.path.startswith("/result"):
            return self._download()
        key = self.headers["Sec-WebSocket-Key"]  # the websocket handshake, then frames
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        how = type(self).how
        if how == "trickle_handshake":  # the 101 answer, a byte every 0.2 s
            head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            return self._send(f"{head}Sec-WebSocket-Accept: {accept.decode()}\r\n\r\n".encode(), slowly=True)
        self.send_response(101)
        for name, value in (("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)):
            self.send_header(name, value.decode() if isinstance(value, bytes) else value)
        self.end_headers()
        if how != "silent":
            self._frame(json.dumps({"session_id": "s-1"}).encode())
        if how == "status":
            time.sleep(0.3)  # after the POST's RECEIVED answer
            self._frame(json.dumps({"id": "j-1", "status": "ERROR", "description": self.detail}).encode())
        elif how in ("download", "trickle", "frame", "trickle_frame") and self.posted.wait(30):
            if how in ("download", "trickle"):
                url = f"http://127.0.0.1:{self.server.server_address[1]}/result"
                self._frame(json.dumps({"id": "j-1", "status": "COMPLETED", "data": url}).encode())
            else:
                from nnsight.schema.response import ResponseModel

                frame = ResponseModel(id="j-1", status="COMPLETED", data=self.result).pickle()
                self._frame(frame, binary=True, slowly=how == "trickle_frame")
        head = self.rfile.read(2)  # the client's close frame (masked): answered, as a server does
        if len(head) == 2:
            self.rfile.read((head[1] & 0x7F) + 4)
            self.wfile.write(bytes([0x88, 0]))

    def _frame(self, data: bytes, binary: bool = False, slowly: bool = False) -> None:
        n = len(data)
        size = (
            bytes([n])
            if n < 126
            else bytes([126]) + n.to_bytes(2, "big")
            if n < 65536
            else bytes([127]) + n.to_bytes(8, "big")
        )
        self._send(bytes([0x82 if binary else 0x81]) + size + data, slowly)

    def _send(self, data: bytes, slowly: bool) -> None:
        if not slowly:
            self.wfile.write(data)
            self.wfile.flush()
            return
        for i in range(len(data)):  # a byte every 0.2 s, until the client goes or the test ends
            if self.stop.wait(0.2):
                return
            try:
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
            except OSError:
                return

    def _download(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(self.result)))
        self.end_headers()
        self._send(self.result, slowly=type(self).how == "trickle")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        how = type(self).how
        if how == "no_answer":
            self.stop.wait(60)
            return
        refused = how == "http"
        body = {"detail": self.detail} if refused else {"id": "j-1", "status": "RECEIVED", "description": ""}
        data = json.dumps(body).encode()
        self.send_response(400 if refused else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self._send(data, slowly=how == "trickle_post")
        self.posted.set()


@contextlib.contextmanager
def serving(how: str, **attrs) -> Iterator[str]:
    """A :class:`LoopbackNDIF` answering ``how`` (``attrs``: ``result``, ``detail``) on 127.0.0.1, as nnsight's
    host address (``http://127.0.0.1:port``); its threads are told to stop after."""
    handler = type("Loopback", (LoopbackNDIF,), {"how": how, "posted": threading.Event(), "stop": threading.Event(),
                                                 **attrs})  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        handler.stop.set()
        server.shutdown()
        server.server_close()
