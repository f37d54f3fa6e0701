"""Waiting for NDIF and reading what it sends: every wait bounded, every byte decoded without running anything.

nnsight's ``RemoteBackend`` waits on a websocket with no timeout, reads HTTP answers for up to 600 s a read (so a
host that trickles bytes holds it for ever), and loads results with ``torch.load(weights_only=False)``, which lets
a hostile or spoofed host run code in the kernel. :class:`BoundedRemoteBackend` is that backend with one deadline
over the whole pass (``executor.timeout``), every read capped at the bytes the plan can produce, and every result
(a download, or a binary websocket frame) read by :func:`decode`: tensors and plain containers only.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import socket
import threading
import time
from typing import Any

import torch
import websocket
from nnsight.intervention.backends.remote import RemoteBackend, RemoteError
from nnsight.schema.response import ResponseModel, Status

#: bytes a status message (JSON, or the POST's answer) may take
STATUS_BYTES = 1 << 20


class RemoteExecutionError(RuntimeError):
    """A remote pass failed (no API key, NDIF unreachable, a model it does not serve, a timeout, a result that is
    not what the pass produces): one line says which."""


class RemoteTimeout(RemoteExecutionError, TimeoutError):
    """The pass's deadline (``executor.timeout``) passed while waiting for NDIF."""


def decode(content: bytes, compressed: bool, limit: int, allow: tuple = ()) -> Any:
    """What ``torch.save`` wrote in ``content`` (zstd-compressed when ``compressed``), read without executing
    anything: tensors, numbers, strings and plain containers (the globals of :func:`_plain_globals`), plus the
    classes in ``allow``. More than ``limit`` bytes, compressed or not, is refused; so is anything else."""
    if len(content) > limit:
        raise oversized(len(content), limit)
    if compressed:
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(content))
        parts, size = [], 0
        with contextlib.suppress(zstandard.ZstdError), reader:
            while chunk := reader.read(1 << 20):
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise oversized(size, limit, "uncompressed")
        if not parts:
            raise RemoteExecutionError("NDIF's result is not zstd-compressed data as requested; refused")
        content = b"".join(parts)
    if not content.startswith(b"PK\x03\x04"):
        raise RemoteExecutionError("NDIF's result is not a torch.save archive; refused")
    plain = _plain({**_plain_globals(), **{f"{c.__module__}.{c.__qualname__}": c for c in allow}})
    try:  # torch's reader of the archive, with every global the pickle names looked up in the allowed ones
        return torch.load(io.BytesIO(content), map_location="cpu", weights_only=False, pickle_module=plain)
    except pickle.UnpicklingError as error:
        raise RemoteExecutionError(
            f"NDIF's result holds something other than tensors and plain containers ({_line(error)[:120]}); refused "
            "without running it (is nnsight.CONFIG.API.HOST the real NDIF?)"
        ) from None
    except Exception as error:
        raise RemoteExecutionError(f"NDIF's result could not be read: {type(error).__name__}: {_line(error)}") from None


def _plain(allowed: dict[str, Any]) -> type:
    """A pickle module for ``torch.load`` whose unpickler builds only what ``allowed`` names: any other global the
    pickle names is refused before it is called. (torch's own ``weights_only=True`` reader does the same but
    knows only pickle protocol 2; nnsight pickles status frames with protocol 4.)"""

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            value = allowed.get(f"{module}.{name}")
            if value is None:
                raise pickle.UnpicklingError(f"{module}.{name} is not allowed")
            return value

    def load(file: Any, **kwargs: Any) -> Any:
        return Unpickler(file, **kwargs).load()

    return type("plain_pickle", (), {"Unpickler": Unpickler, "load": staticmethod(load)})


def _plain_globals() -> dict[str, Any]:
    """What a ``torch.save`` of tensors in plain containers names: tensors' rebuild, dtypes, bytes (protocol 2)."""
    import _codecs
    import collections

    from torch import _utils

    dtypes = {f"torch.{name}": value for name, value in vars(torch).items() if isinstance(value, torch.dtype)}
    return {**dtypes, "torch._utils._rebuild_tensor_v2": _utils._rebuild_tensor_v2, "torch.Size": torch.Size,
            "collections.OrderedDict": collections.OrderedDict, "_codecs.encode": _codecs.encode,
            "builtins.set": set, "builtins.frozenset": frozenset, "builtins.complex": complex,
            "builtins.bytearray": bytearray}  # fmt: skip


def oversized(size: int, limit: int, what: str = "") -> RemoteExecutionError:
    """The error for a result larger than the pass can produce."""
    return RemoteExecutionError(
        f"NDIF sent more than the pass can produce ({size:,} bytes{' ' + what if what else ''}, at most "
        f"{limit:,} expected); refused"
    )


class BoundedRemoteBackend(RemoteBackend):
    """nnsight's blocking ``RemoteBackend`` with every wait ending by ``timeout`` seconds after the call, at most
    ``limit`` bytes read from the host, and results decoded by :func:`decode`. Each read's own timeout is what is
    left, and a watchdog shuts down every socket the pass opened (websocket, POST, download) at the deadline, so a
    host that trickles bytes cannot stretch it. Only the saved variables named in ``names`` reach the caller."""

    def __init__(self, model_key: str, host: str, timeout: float, limit: int, names: tuple[str, ...]) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
            raise ValueError(f"executor.timeout must be a positive number of seconds, got {timeout!r:.40}")
        super().__init__(model_key, host=host)
        self.timeout, self.limit, self.names = timeout, limit, names
        self.deadline = time.monotonic() + timeout
        self.received = 0  #: bytes read from the host in this pass (websocket frames and downloads)
        self.sockets: list[socket.socket] = []
        self.expired = False

    def __call__(self, tracer: Any = None) -> Any:
        self.deadline, self.received, self.sockets, self.expired = time.monotonic() + self.timeout, 0, [], False
        watchdog = threading.Timer(self.timeout, self.expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            return super().__call__(tracer)
        except RemoteExecutionError:
            raise
        except Exception:
            if self.expired or time.monotonic() >= self.deadline:  # a read the watchdog ended, or a read timeout
                self.left()
            raise
        finally:
            watchdog.cancel()

    def left(self) -> float:
        """Seconds left before the deadline; past it, :class:`RemoteTimeout`."""
        left = self.deadline - time.monotonic()
        if left <= 0 or self.expired:
            raise RemoteTimeout(f"NDIF at {self.host} did not answer within {self.timeout:g} s; try again later "
                                "(or raise executor.timeout)")  # fmt: skip
        return left

    def expire(self) -> None:
        """The deadline: shut down every socket of the pass (a read blocked in one returns at once)."""
        self.expired = True
        for sock in self.sockets:
            _shutdown(sock)

    def watch(self, sock: Any) -> None:
        """Shut ``sock`` down at the deadline."""
        if isinstance(sock, socket.socket):
            self.sockets.append(sock)
            if self.expired:
                _shutdown(sock)

    def count(self, size: int) -> None:
        """Count ``size`` more bytes read from the host; more than the pass can produce is refused."""
        self.received += size
        if self.received > self.limit:
            raise oversized(self.received, self.limit)

    def _traced(self, event: str, info: dict) -> None:
        """httpcore's trace hook: each connection's socket (plain, then TLS) is watched from when it opens."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            self.watch(stream.get_extra_info("socket") if stream is not None else None)

    def request(self, request: Any, tracer: Any) -> Any:
        blob = self._serialize(tracer)
        connection = _Watched(self.watch)
        connection.settimeout(self.left())
        connection.connect(f"{self.ws_host}/subscribe", header={"ndif-api-key": self.api_key} if self.api_key else None)
        read = connection.frame_buffer.recv

        def bounded(size: int) -> bytes:
            connection.sock.settimeout(self.left())
            data = read(size)
            self.count(len(data))
            return data

        connection.frame_buffer.recv = bounded
        done = False
        try:
            request.session_id = _session(connection.recv())
            self.send(request, blob)
            while True:
                response = self.parse(connection.recv())
                result = self.handle(response)
                if response.status == Status.COMPLETED:
                    done = True
                    return result
        finally:
            if done:
                connection.close(timeout=min(1.0, max(self.deadline - time.monotonic(), 0.01)))
            else:
                connection.shutdown()

    def parse(self, message: str | bytes) -> ResponseModel:
        """A status frame: JSON, or ``torch.save`` bytes (a result sent on the socket) read by :func:`decode`."""
        try:
            if isinstance(message, (bytes, bytearray)):
                return ResponseModel(**decode(bytes(message), False, self.limit, allow=(Status,)))
            return ResponseModel.model_validate_json(message)
        except RemoteExecutionError:
            raise
        except Exception as error:
            raise RemoteExecutionError(f"NDIF sent a malformed status message: {_line(error)}") from None

    def _post(self, request: Any, blob: bytes) -> ResponseModel:
        import httpx
        from nnsight.intervention.backends import remote

        headers = {"ndif-timestamp": repr(time.time()), "nnsight-version": remote._NNSIGHT_VERSION}
        if self.api_key:
            headers["ndif-api-key"] = self.api_key
        try:
            with httpx.Client(timeout=httpx.Timeout(self.left())) as client:
                files = {"blob": ("request", blob, "application/octet-stream")}
                with client.stream("POST", f"{self.host}/request", data={"data": request.metadata()}, files=files,
                                   headers=headers, extensions={"trace": self._traced}) as response:  # fmt: skip
                    body = self._read(response, STATUS_BYTES)
        except httpx.TimeoutException:
            self.left()
            raise
        except httpx.HTTPError as error:
            raise RemoteError(f"Failed to send request: {error}") from error
        if response.is_error:
            detail = None
            with contextlib.suppress(ValueError):
                parsed = httpx.Response(response.status_code, content=body).json()
                detail = parsed.get("detail") if isinstance(parsed, dict) else parsed
            raise RemoteError(f"Failed to send request: {detail or f'HTTP {response.status_code}'}")
        return self.parse(body.decode("utf-8", "replace"))

    def _read(self, response: Any, limit: int) -> bytes:
        """An HTTP response's body, at most ``limit`` bytes, by the deadline."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise oversized(int(declared), limit, "declared")
        buffer = bytearray()
        for chunk in response.iter_bytes():
            self.left()
            buffer += chunk
            if len(buffer) > limit:
                raise oversized(len(buffer), limit)
        return bytes(buffer)

    def download_result(self, url: Any) -> Any:
        if isinstance(url, (bytes, bytearray)):
            return self.finalize(bytes(url))
        if not url:
            return None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise RemoteExecutionError(f"NDIF's result is neither data nor an http(s) address ({type(url).__name__})")
        import httpx

        try:
            with (
                httpx.Client(timeout=httpx.Timeout(self.left())) as client,
                client.stream("GET", url, extensions={"trace": self._traced}) as response,
            ):
                if response.is_error:
                    raise RemoteError(f"downloading the result failed: HTTP {response.status_code}")
                content = self._read(response, self.limit - self.received)
        except httpx.TimeoutException:
            self.left()
            raise
        self.count(len(content))
        return self.finalize(content)

    def finalize(self, content: bytes) -> Any:
        return decode(content, self.compress, self.limit)

    def _push(self, result: Any, tracer: Any) -> None:
        super()._push({name: result[name] for name in self.names if name in result}, tracer)


class _Watched(websocket.WebSocket):
    """A websocket client that hands each socket it opens to ``watch`` before its handshake."""

    def __init__(self, watch: Any, **kwargs: Any) -> None:
        self._watch = watch
        super().__init__(**kwargs)

    @property
    def sock(self) -> Any:
        return self.__dict__.get("_sock")

    @sock.setter
    def sock(self, value: Any) -> None:
        self.__dict__["_sock"] = value
        if value is not None:
            self._watch(value)


def _session(message: str | bytes) -> str:
    import json

    try:
        session = json.loads(message)["session_id"]
    except Exception:
        session = None
    if not isinstance(session, str):
        raise RemoteExecutionError("NDIF's websocket did not send a session id first; is nnsight.CONFIG.API.HOST NDIF?")
    return session


def _shutdown(sock: socket.socket | None) -> None:
    with contextlib.suppress(OSError, AttributeError):
        sock.shutdown(socket.SHUT_RDWR)


def _line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]
