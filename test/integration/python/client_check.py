"""Exercises agent/client/python/outpost_client.py against a real agent (driven by
test/integration/client-python.test.ts). argv: socket path, case file (JSON written by the
test: model ids, inputs, PNG and frame paths, shm key). Prints one JSON object per line; the
test compares the values with the agent's in-process answers."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "agent", "client", "python"))
import outpost_client as oc  # noqa: E402

sock, case_file = sys.argv[1], sys.argv[2]
case = json.load(open(case_file))
agent = oc.Client(sock)


def emit(name, value):
    print(json.dumps({"name": name, "value": value}), flush=True)


emit("live_ready", [agent.live(), agent.ready()])
emit("models", sorted(m["id"] for m in agent.models()))
emit("metadata", agent.metadata(case["model"])["inputs"])
emit("server", agent.server()["extensions"])
shape = case["shape"]
values = case["input"]
np = oc.np
emit("numpy", np is not None)
if np is not None:
    x = np.array(values, dtype=np.float32).reshape(shape)
    out = agent.infer(case["model"], {case["inputName"]: x})
    emit("infer_numpy", out[case["outputName"]].reshape(-1).tolist())
    # Shared memory, mapped on this side: the input written in place, the output read as a view.
    region = oc.SharedMemoryRegion.create(case["shmKey"], 64 + x.nbytes + 65536)
    region.array(64, "FP32", shape)[...] = x
    agent.register_shared_memory("py", region, x.nbytes + 65536, 64)
    emit("shm_status", agent.shared_memory_status())
    out = agent.infer(case["model"], {case["inputName"]: region.tensor("py", 0, "FP32", shape)},
                      outputs=[{"name": case["outputName"], "shared_memory": ("py", x.nbytes, 4096)}])
    emit("infer_shm", out[case["outputName"]].reshape(-1).tolist())
    frame = np.fromfile(case["framePath"], dtype=np.uint8).reshape(case["frameHeight"], case["frameWidth"], 3)
    emit("predict_frame", agent.predict(case["model"], frame, frame_format="rgb"))
    region.array(64, "UINT8", frame.shape)[...] = frame[:, :, ::-1]  # as BGR, like a cv2 frame
    emit("predict_shm", agent.predict(case["model"], oc.ShmFrame("py", frame.shape[1], frame.shape[0], "bgr", 0)))
    agent.unregister_shared_memory("py")
    region.destroy()
try:
    agent.shared_memory_status("py")
except oc.OutpostError as e:
    emit("unknown_region", e.code)
# Without numpy: plain lists in, flat lists out.
oc.np = None
out = agent.infer(case["model"], {case["inputName"]: ("FP32", shape, values)})
emit("infer_lists", out[case["outputName"]]["data"])
oc.np = np
png = open(case["pngPath"], "rb").read()
emit("predict_png", agent.predict(case["model"], png))
emit("annotate_png_magic", list(agent.predict(case["model"], png, annotate=True)[:8]))
for bad in [lambda: agent.metadata("acme/absent"), lambda: agent.predict(case["model"], b"not an image")]:
    try:
        bad()
    except oc.OutpostError as e:
        emit("error", [e.code, e.status])
try:
    oc.Client(sock + ".absent").ready()
except oc.OutpostError as e:
    emit("unreachable", e.code)
emit("events_wait", True)
for event in agent.events():
    emit("event", event)
    break
agent.close()
