"""Outpost agent client for Python 3.8+: one file, standard library only (numpy when present).

Talks HTTP/1.1 to the agent's Unix socket (default /run/outpost/agent.sock, or $OUTPOST_SOCKET)
over one kept-alive connection:

    from outpost_client import Client
    agent = Client()
    agent.ready()                                   # True when the agent takes requests
    agent.models()                                  # [{'id', 'activeVersion', 'state', ...}]
    agent.metadata('acme/net')                      # KServe model metadata
    out = agent.infer('acme/net', {'data': array})  # binary tensors; numpy arrays come back
    agent.predict('acme/net', open('cat.jpg', 'rb').read())      # typed results (a dict)
    agent.predict('acme/net', frame)                # a numpy HxWx3 uint8 frame (BGR, as cv2)
    for event in agent.events(): print(event)       # model changes (Server-Sent Events)

Shared memory (Triton's system shared-memory extension), zero-copy on this side with numpy:

    region = SharedMemoryRegion.create('/cam0', 2 * 602112)   # a file in /dev/shm, mmap'ed
    region.set(0, array)                                       # or region.array(...)[...] = frame
    agent.register_shared_memory('cam0', region)
    agent.infer('acme/net', {'data': region.tensor('cam0', 0, 'FP32', [1, 3, 224, 224])},
                outputs=[{'name': 'prob', 'shared_memory': ('cam0', 602112, 4000)}])
    agent.unregister_shared_memory('cam0'); region.destroy()

Without numpy, tensors are (datatype, shape, flat list) tuples and come back as dicts with a
flat 'data' list. Every failure raises OutpostError with the agent's stable code
(docs/errors.md), or API_UNREACHABLE when the socket is absent or refused.
"""

import array
import http.client
import json
import mmap
import os
import socket
import sys
from urllib.parse import quote, urlencode

try:  # numpy is optional: binary tensors and shared memory work without it, slower.
    import numpy as np
except ImportError:  # pragma: no cover - exercised by the CI run without numpy
    np = None

DEFAULT_SOCKET = "/run/outpost/agent.sock"
# Bodies up to this size go out in one send with the headers (a copy is cheaper than a second
# wake-up of the agent); larger ones are sent part by part.
_JOIN_BELOW = 256 * 1024

# KServe datatype -> (struct/array code, bytes per element, numpy dtype name)
_TYPES = {
    "FP32": ("f", 4, "<f4"),
    "FP16": ("H", 2, "<f2"),
    "UINT8": ("B", 1, "u1"),
    "INT8": ("b", 1, "i1"),
    "INT32": ("i", 4, "<i4"),
    "INT64": ("q", 8, "<i8"),
    "BOOL": ("B", 1, "?"),
}


class OutpostError(Exception):
    """A failure with the agent's stable code (see docs/errors.md) and HTTP status."""

    def __init__(self, code, message, status=0, details=None):
        super().__init__("{}: {}".format(code, message))
        self.code = code
        self.message = message
        self.status = status
        self.details = details


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError as e:
            s.close()
            why = {2: "no socket there (is the agent running?)", 111: "nobody listens on it (is the agent running?)",
                   13: "permission denied (is your user in the socket's group?)"}.get(e.errno, str(e))
            raise OutpostError("API_UNREACHABLE", "cannot reach the agent at {}: {}".format(self._path, why))
        self.sock = s


class ShmTensor:
    """A tensor the agent reads from (or writes to) a registered shared-memory region."""

    def __init__(self, region, offset, byte_size, datatype, shape):
        self.region, self.offset, self.byte_size = region, offset, byte_size
        self.datatype, self.shape = datatype, list(shape)

    def parameters(self):
        p = {"shared_memory_region": self.region, "shared_memory_byte_size": self.byte_size}
        if self.offset:
            p["shared_memory_offset"] = self.offset
        return p


class ShmFrame:
    """A raw frame (packed rows, 3 or 4 bytes per pixel) inside a registered region, for predict."""

    def __init__(self, region, width, height, format="bgr", offset=0):
        self.region, self.width, self.height, self.format, self.offset = region, width, height, format, offset


class SharedMemoryRegion:
    """A POSIX shared-memory object (/dev/shm/<name>, as shm_open makes it), mapped here.

    Python maps it (mmap), so numpy arrays over it are views: writing a frame into
    region.array(...) is the only copy between the camera and the agent's tensor.
    """

    def __init__(self, key, byte_size, fd, path):
        self.key, self.byte_size, self._fd, self._path = key, byte_size, fd, path
        self._map = mmap.mmap(fd, byte_size)

    @classmethod
    def create(cls, key, byte_size, directory="/dev/shm"):
        name = key[1:] if key.startswith("/") else key
        if not name or "/" in name or ".." in name:
            raise OutpostError("USAGE", "shared-memory key {!r} must be '/name' with no other '/'".format(key))
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o660)
        try:
            os.ftruncate(fd, byte_size)
        except OSError:
            os.close(fd)
            os.unlink(path)
            raise
        return cls("/" + name, byte_size, fd, path)

    def set(self, offset, data):
        """Copies an array (or bytes) into the object at offset."""
        if np is not None and isinstance(data, np.ndarray):
            view = np.frombuffer(self._map, dtype=np.uint8, count=data.nbytes, offset=offset)
            view[:] = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        else:
            raw = memoryview(data).cast("B")
            self._map[offset:offset + len(raw)] = raw

    def array(self, offset, datatype, shape):
        """A numpy view of the object (no copy): read outputs, or write inputs in place."""
        dt = np.dtype(_TYPES[datatype][2])
        return np.frombuffer(self._map, dtype=dt, count=_count(shape), offset=offset).reshape(shape)

    def read(self, offset, length):
        return bytes(self._map[offset:offset + length])

    def tensor(self, region, offset, datatype, shape):
        """The ShmTensor for `shape` of `datatype` at `offset` of the region registered as `region`."""
        return ShmTensor(region, offset, _count(shape) * _TYPES[datatype][1], datatype, shape)

    def destroy(self):
        """Unmaps, closes and unlinks the object (the agent's fd keeps it until it unregisters)."""
        try:
            self._map.close()
        except BufferError:
            pass  # numpy views still hold the map; it is released with them
        os.close(self._fd)
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            pass


def _count(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _datatype_of(a):
    names = {"float32": "FP32", "float16": "FP16", "uint8": "UINT8", "int8": "INT8", "int32": "INT32",
             "int64": "INT64", "bool": "BOOL"}
    try:
        return names[a.dtype.name]
    except KeyError:
        raise OutpostError("USAGE", "numpy dtype {} has no KServe datatype the agent runs".format(a.dtype))


class Client:
    """One agent, one kept-alive connection (reopened when the agent closed an idle one)."""

    def __init__(self, socket_path=None, timeout=30.0):
        self.socket_path = socket_path or os.environ.get("OUTPOST_SOCKET") or DEFAULT_SOCKET
        self.timeout = timeout
        self._conn = None
        self._regions = {}

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- requests ---------------------------------------------------------------------------
    def _request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if body is not None:
            headers["Content-Length"] = str(sum(len(memoryview(p).cast("B")) for p in body))
        for attempt in (0, 1):
            fresh = self._conn is None
            if fresh:
                self._conn = _UnixConnection(self.socket_path, self.timeout)
            try:
                self._conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for k, v in headers.items():
                    self._conn.putheader(k, v)
                size = int(headers.get("Content-Length", 0))
                if body and size <= _JOIN_BELOW:
                    # One send for headers and a small body: the agent parses it in one read.
                    self._conn.endheaders(b"".join(body))
                else:
                    self._conn.endheaders()
                    for part in body or ():
                        self._conn.send(part)  # large tensors are sent from their own memory, never joined
                res = self._conn.getresponse()
                data = res.read()
                if res.getheader("Connection", "").lower() == "close":
                    self.close()
                return res.status, res, data
            except OutpostError:
                self.close()
                raise
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # The agent closes idle kept-alive connections; a request on one that it had
                # just closed never reached it, so it is sent once more on a new connection.
                self.close()
                if fresh or attempt == 1:
                    raise OutpostError("API_UNREACHABLE", "the agent closed the connection: {}".format(e))
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise OutpostError("API_UNREACHABLE", "request to the agent failed: {}".format(e))

    def _json(self, method, path, body=None):
        parts = None if body is None else [json.dumps(body).encode()]
        status, res, data = self._request(method, path, parts, {"Content-Type": "application/json"} if parts else None)
        if status != 200:
            raise _error(status, data)
        return json.loads(data) if data else None

    # -- KServe -----------------------------------------------------------------------------
    def live(self):
        return self._request("GET", "/v2/health/live")[0] == 200

    def ready(self):
        return self._request("GET", "/v2/health/ready")[0] == 200

    def server(self):
        return self._json("GET", "/v2")

    def models(self):
        return self._json("GET", "/v2/models")["models"]

    def metadata(self, model, version=None):
        return self._json("GET", _model_path(model, version))

    def infer(self, model, inputs, outputs=None, version=None):
        """Runs tensors through `model` and returns {output name: array}.

        inputs: {name: numpy array | (datatype, shape, flat list) | ShmTensor}, sent as binary
        tensors (shared-memory ones by reference). outputs: None (all, as binary) or a list of
        names or {'name', 'shared_memory': (region, offset, byte_size)}; a shared-memory output
        is returned as a numpy view of the region when it was registered through this client.
        """
        header_inputs, chunks = [], []
        for name, t in inputs.items():
            if isinstance(t, ShmTensor):
                header_inputs.append({"name": name, "datatype": t.datatype, "shape": t.shape,
                                      "parameters": t.parameters()})
                continue
            if np is not None and isinstance(t, np.ndarray):
                datatype, shape = _datatype_of(t), list(t.shape)
                raw = np.ascontiguousarray(t.astype(t.dtype.newbyteorder("<"), copy=False))
                raw = memoryview(raw).cast("B")
            else:
                datatype, shape, values = t
                code = _TYPES[datatype][0]
                raw = array.array(code, [int(bool(v)) for v in values] if datatype == "BOOL" else values)
                if sys.byteorder != "little":
                    raw.byteswap()
                raw = memoryview(raw).cast("B")
            chunks.append(raw)
            header_inputs.append({"name": name, "datatype": datatype, "shape": shape,
                                  "parameters": {"binary_data_size": len(raw)}})
        request = {"inputs": header_inputs, "parameters": {"binary_data_output": True}}
        if outputs is not None:
            wanted = []
            for o in outputs:
                if isinstance(o, str):
                    wanted.append({"name": o, "parameters": {"binary_data": True}})
                else:
                    region, offset, size = o["shared_memory"]
                    wanted.append({"name": o["name"], "parameters": ShmTensor(region, offset, size, "", []).parameters()})
            request["outputs"] = wanted
        head = json.dumps(request).encode()
        head += b" " * (-len(head) % 8)  # aligned tensors let the agent use views, not copies
        status, res, data = self._request("POST", _model_path(model, version) + "/infer", [head] + chunks, {
            "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))})
        if status != 200:
            raise _error(status, data)
        return self._outputs(res, data)

    def _outputs(self, res, data):
        hl = int(res.getheader("Inference-Header-Content-Length") or len(data))
        meta = json.loads(data[:hl])
        at, out = hl, {}
        for o in meta["outputs"]:
            p = o.get("parameters") or {}
            datatype, shape = o["datatype"], o["shape"]
            if "shared_memory_region" in p:
                region = self._regions.get(p["shared_memory_region"])
                offset = p.get("shared_memory_offset", 0)
                out[o["name"]] = (region[0].array(region[1] + offset, datatype, shape) if region and np is not None
                                  else ShmTensor(p["shared_memory_region"], offset, p["shared_memory_byte_size"],
                                                 datatype, shape))
                continue
            if "binary_data_size" in p:
                size = p["binary_data_size"]
                raw = data[at:at + size]
                at += size
                if np is not None:
                    out[o["name"]] = np.frombuffer(raw, dtype=np.dtype(_TYPES[datatype][2])).reshape(shape)
                else:
                    a = array.array(_TYPES[datatype][0])
                    a.frombytes(raw)
                    if sys.byteorder != "little":
                        a.byteswap()
                    out[o["name"]] = {"datatype": datatype, "shape": shape, "data": a.tolist()}
            else:
                out[o["name"]] = {"datatype": datatype, "shape": shape, "data": o.get("data", [])}
        return out

    # -- shared memory ----------------------------------------------------------------------
    def register_shared_memory(self, name, region, byte_size=None, offset=0):
        """Registers [offset, offset + byte_size) of a SharedMemoryRegion (or a key string)."""
        key = region.key if isinstance(region, SharedMemoryRegion) else region
        size = byte_size if byte_size is not None else region.byte_size - offset
        self._json("POST", "/v2/systemsharedmemory/region/{}/register".format(quote(name, safe="")),
                   {"key": key, "offset": offset, "byte_size": size})
        if isinstance(region, SharedMemoryRegion):
            self._regions[name] = (region, offset)

    def unregister_shared_memory(self, name=None):
        path = ("/v2/systemsharedmemory/unregister" if name is None
                else "/v2/systemsharedmemory/region/{}/unregister".format(quote(name, safe="")))
        self._json("POST", path)
        if name is None:
            self._regions.clear()
        else:
            self._regions.pop(name, None)

    def shared_memory_status(self, name=None):
        return self._json("GET", "/v2/systemsharedmemory/status" if name is None
                          else "/v2/systemsharedmemory/region/{}/status".format(quote(name, safe="")))

    # -- predict and events -----------------------------------------------------------------
    def predict(self, model, image_bytes_or_frame, annotate=False, confidence=None, top_k=None, version=None,
                frame_format="bgr"):
        """Typed results for one image: JPEG/PNG bytes, a numpy HxWx3 (or x4) uint8 frame in
        `frame_format` (bgr by default, as cv2 and edgeIQ frames are), or a ShmFrame. With
        annotate=True the answer is the PNG bytes of the image with the results drawn on it."""
        owner, _, name = model.partition("/")
        if not owner or not name:
            raise OutpostError("USAGE", "model {!r} must be owner/name".format(model))
        q = {}
        if annotate:
            q["annotate"] = "1"
        if confidence is not None:
            q["confidence"] = str(confidence)
        if top_k is not None:
            q["top_k"] = str(top_k)
        if version is not None:
            q["version"] = str(version)
        image = image_bytes_or_frame
        body = None
        if isinstance(image, ShmFrame):
            q.update(width=image.width, height=image.height, format=image.format, shm_region=image.region)
            if image.offset:
                q["shm_offset"] = image.offset
        elif isinstance(image, (bytes, bytearray, memoryview)):
            body = [image]
        elif np is not None and isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
                raise OutpostError("USAGE", "a frame is a HxWx3 (or HxWx4) uint8 array")
            fmt = frame_format + ("a" if image.shape[2] == 4 else "")
            q.update(width=image.shape[1], height=image.shape[0], format=fmt)
            body = [memoryview(np.ascontiguousarray(image)).cast("B")]
        else:
            raise OutpostError("USAGE", "predict takes JPEG/PNG bytes, a numpy frame or a ShmFrame")
        path = "/v1/models/{}/{}/predict".format(quote(owner, safe=""), quote(name, safe=""))
        if q:
            path += "?" + urlencode(q)
        status, res, data = self._request("POST", path, body, {"Content-Type": "application/octet-stream"})
        if status != 200:
            raise _error(status, data)
        return data if annotate else json.loads(data)

    def events(self, last_event_id=None):
        """Yields model changes ({'type', 'model', 'version', ...}) until the agent closes the
        stream. Uses its own connection, without a timeout; break out of the loop to stop."""
        conn = _UnixConnection(self.socket_path, None)
        try:
            headers = {"Accept": "text/event-stream"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            conn.request("GET", "/v1/events", headers=headers)
            res = conn.getresponse()
            if res.status != 200:
                raise _error(res.status, res.read())
            event, data, eid = None, [], None
            for raw in res:
                line = raw.decode("utf-8").rstrip("\r\n")
                if line == "":
                    if event:
                        message = json.loads("\n".join(data)) if data else {}
                        if eid is not None:
                            message["id"] = eid
                        yield message
                    event, data, eid = None, [], None
                elif line.startswith(":"):
                    continue
                else:
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
                    elif field == "id":
                        eid = value
        finally:
            conn.close()


def _model_path(model, version):
    path = "/v2/models/" + quote(model, safe="")
    return path if version is None else "{}/versions/{}".format(path, int(version))


def _error(status, data):
    try:
        body = json.loads(data)
        return OutpostError(body.get("code", "HTTP_{}".format(status)), body.get("message") or body.get("error", ""),
                            status, body.get("details"))
    except (ValueError, AttributeError):
        return OutpostError("API_BAD_RESPONSE", "HTTP {}: {!r}".format(status, bytes(data[:80])), status)


__all__ = ["Client", "OutpostError", "SharedMemoryRegion", "ShmFrame", "ShmTensor", "DEFAULT_SOCKET"]
