"""Example app (Python client): reads frames, predicts, prints each result and then FPS and
latency. Frames are the JPEG/PNG files of a folder (sorted by name), or a video decoded by
ffmpeg (when installed) into raw BGR frames sent without any encode (numpy needed for those).

    python3 agent/client/examples/predict_frames.py --model acme/net --folder ./frames
    python3 agent/client/examples/predict_frames.py --model acme/net --video cam.mp4 --size 640x360
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import outpost_client as oc  # noqa: E402


def video_frames(path, width, height):
    ff = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-i", path, "-vf", "scale={}:{}".format(width, height),
                           "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"], stdout=subprocess.PIPE)
    size = width * height * 3
    try:
        while True:
            data = ff.stdout.read(size)
            if len(data) < size:
                return
            yield oc.np.frombuffer(data, dtype=oc.np.uint8).reshape(height, width, 3)
    finally:
        ff.kill()


def summary(result):
    top = ["{} {:.2f}".format(p.get("label", "?"), p.get("confidence", 0)) for p in result.get("predictions", [])[:3]]
    return ", ".join(top) if top else result.get("purpose", "result")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--folder")
    ap.add_argument("--video")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--socket")
    ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args()
    if not a.folder and not a.video:
        ap.error("give --folder or --video")
    agent = oc.Client(a.socket)
    if a.folder:
        names = sorted(f for f in os.listdir(a.folder) if f.lower().endswith((".jpg", ".jpeg", ".png")))
        frames = ((n, open(os.path.join(a.folder, n), "rb").read()) for n in names)
    else:
        w, h = (int(v) for v in a.size.split("x"))
        frames = (("frame {}".format(i + 1), f) for i, f in enumerate(video_frames(a.video, w, h)))
    latencies = []
    started = time.perf_counter()
    for i, (name, frame) in enumerate(frames):
        if a.limit and i >= a.limit:
            break
        t0 = time.perf_counter()
        result = agent.predict(a.model, frame)
        ms = (time.perf_counter() - t0) * 1000
        latencies.append(ms)
        print("{}\t{:.1f} ms\t{}".format(name, ms, summary(result)), flush=True)
    agent.close()
    seconds = time.perf_counter() - started
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else 0

    print("frames {}  fps {:.1f}  latency p50 {:.1f} ms  p99 {:.1f} ms".format(
        len(latencies), len(latencies) / seconds, pct(50), pct(99)))


if __name__ == "__main__":
    main()
