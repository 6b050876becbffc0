#!/usr/bin/env python3
"""bench-vision.py - ResNet-18 at 224x224, images/s of bitnet (ternary) and onnxruntime
(float, the same weights) side by side in one run (issue 22).

    python3 scripts/bench-vision.py [--bitnet build/bitnet] [--work DIR] [--rounds 5]
                                    [--iters 4] [--batches 1,8] [--threads 1,2] [--json]
                                    [--size 224]

--size S: the images' side (default 224; a smaller one makes a quick check of the script,
as test_bench_vision.sh does).

The model is a torchvision-structured ResNet-18 (BasicBlock, 3 input channels, 1000 classes)
with random weights (seed 1; BatchNorm statistics gathered from two batches of random images
so that activations keep a sensible scale). It is exported once to SafeTensors + config.json
(converted by `bitnet convert` into a ternary GGUF, docs/VISION.md, which checks it against
PyTorch's forward of the same weights with the ternary fake quantization on 4 images) and to
ONNX by torch.onnx.export (float32, run by onnxruntime). The inputs are the same random
normalised images for both. The ternary model is not the float one: this compares speed and
memory, not accuracy.

Each (batch B, threads T) cell runs each engine in its own process, ROUNDS times, the order
alternating from round to round (bitnet first in odd rounds), so both see the same machine:
  bitnet       `bitnet classify -m resnet18.gguf IMGS.f32 --batch B -t T --json` on ITERS
               batches of B images; images/s = ITERS * B / the forward time classify reports
               (its passes through the engine: not starting, loading or reading files);
  onnxruntime  a child process that opens an InferenceSession (intra_op_num_threads T,
               inter_op 1, sequential, all graph optimisations) and times ITERS runs of B
               images; images/s = ITERS * B / that time.
Neither gets a warm-up pass: the first batch of each process, with its allocations, counts.
The table has the median images/s over the rounds of each, their ratio, the median CPU time
per image (bitnet: the process's CPU time with ITERS batches minus that with one batch;
onnxruntime: its process time over the runs after the first; less disturbed than the wall
clock by other work on the machine, and counting every thread's time, waiting included),
the spread of the rounds, and the peak resident memory of each process (ru_maxrss from wait4;
the largest over the rounds): bitnet's whole process; onnxruntime's includes the Python
interpreter and numpy, whose share is stated apart (a child that only imports numpy and
onnxruntime). Linux starts a forked child's peak at its parent's, so the model is made by a
child of its own and the measuring process stays small; its floor (the peak of `true` started
the same way) is printed too. The machine (CPU model, cores) and the load average before and
after are printed with it.

Needs torch, onnx, onnxruntime, numpy and safetensors (PyPI), and bitnet built (make).
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

RESNET18 = {"arch": "resnet", "block": "basic", "depths": [2, 2, 2, 2],
            "widths": [64, 128, 256, 512], "stem_kernel": 7, "stem_stride": 2,
            "stem_pool": True, "bn_eps": 1e-5, "in_chans": 3, "num_classes": 1000,
            "image_size": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def die(msg):
    sys.stderr.write("bench-vision: %s\n" % msg)
    sys.exit(1)


def model_paths(work, size):
    return (os.path.join(work, "resnet18-%d" % size), os.path.join(work, "resnet18-%d.onnx" % size),
            os.path.join(work, "imgs-%d.f32" % size))


def make_model(work, size):
    """writes work/resnet18/{model.safetensors,config.json}, work/resnet18.onnx, and
    work/imgs.f32 (16 random normalised images)."""
    import numpy as np
    import torch
    from safetensors.torch import save_file
    sys.path.insert(0, os.path.join(ROOT, "tests", "vision"))
    from gen_fashion import ResNet

    src, onnx_path, imgs = model_paths(work, size)
    cfg = dict(RESNET18, image_size=size)
    if all(os.path.exists(p) for p in (os.path.join(src, "model.safetensors"), onnx_path, imgs)):
        return src, onnx_path, imgs
    os.makedirs(src, exist_ok=True)
    torch.manual_seed(1)
    net = ResNet(cfg, quant=False)
    for m in net.modules():  # cumulative BN statistics over the calibration batches
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(8, 3, size, size))
    net.eval()
    sd = {k: v.contiguous() for k, v in net.state_dict().items()
          if not k.endswith("num_batches_tracked")}
    save_file(sd, os.path.join(src, "model.safetensors"))
    with open(os.path.join(src, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")
    torch.onnx.export(net, (torch.randn(1, 3, size, size),), onnx_path, dynamo=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}}, opset_version=17)
    x = torch.randn(16, 3, size, size, generator=torch.Generator().manual_seed(2))
    x.numpy().astype("<f4").tofile(imgs)
    # the reference bitnet convert validates against: PyTorch's forward of the same weights
    # with the ternary fake quantization (docs/VISION.md), on 4 of the images
    qnet = ResNet(cfg, quant=True)
    qnet.load_state_dict(net.state_dict())
    qnet.eval()
    with torch.no_grad():
        ref = qnet(x[:4])
    x[:4].numpy().astype("<f4").tofile(os.path.join(src, "ref_inputs.f32"))
    ref.numpy().astype("<f4").tofile(os.path.join(src, "ref_logits.f32"))
    return src, onnx_path, imgs


def run_child(argv):
    """runs argv, returns (wall seconds, peak RSS in MB, stdout, CPU seconds): the child's own
    rusage from wait4 (RUSAGE_CHILDREN would give the largest of all children so far)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            die("%s failed (exit %d): %s" % (" ".join(argv[:2]), p.returncode,
                                             err.read().decode(errors="replace")[-400:]))
        return wall, ru.ru_maxrss / 1024.0, out.read(), ru.ru_utime + ru.ru_stime


def slice_images(imgs, n, work, size):
    """a file of n images (repeating the 16 of imgs)."""
    per = 3 * size * size * 4
    path = os.path.join(work, "imgs-%d-%d.f32" % (size, n))
    if not os.path.exists(path):
        data = open(imgs, "rb").read()
        with open(path, "wb") as f:
            for i in range(n):
                f.write(data[(i % 16) * per:(i % 16 + 1) * per])
    return path


def bitnet_cell(bitnet, gguf, imgs, work, size, batch, threads, iters):
    """(images/s from classify's own forward time - "seconds" of --json: the batches' forward
    passes, not starting, loading or reading - of iters batches, peak RSS, CPU ms per image:
    the process's CPU time with iters batches minus that with one, per image of the others)."""
    argv = [bitnet, "classify", "-m", gguf, "--batch", str(batch), "-t", str(threads), "--json",
            "--top", "1"]
    _, rss, out, cpu = run_child(argv + [slice_images(imgs, batch * iters, work, size)])
    d = json.loads(out)
    if iters > 1:
        cpu1 = run_child(argv + [slice_images(imgs, batch, work, size)])[3]
        cpu_ms = 1000 * (cpu - cpu1) / ((iters - 1) * batch)
    else:
        cpu_ms = 1000 * cpu / batch
    return d["images"] / d["seconds"], rss, cpu_ms


def ort_cell(onnx_path, imgs, size, batch, threads, iters):
    argv = [sys.executable, os.path.abspath(__file__), "--ort-worker", onnx_path, imgs,
            str(size), str(batch), str(threads), str(iters)]
    _, rss, out, _ = run_child(argv)
    d = json.loads(out)
    return d["images_per_s"], rss, d["cpu_ms_per_image"]


def ort_worker(onnx_path, imgs, size, batch, threads, iters):
    import numpy as np
    import onnxruntime as ort
    x = np.fromfile(imgs, dtype="<f4").reshape(-1, 3, size, size)
    x = np.concatenate([x] * (batch // x.shape[0] + 1))[:batch]
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    t0 = time.perf_counter()
    c_start = time.process_time()
    s.run(None, {"input": x})
    c0 = time.process_time()  # CPU time of the runs after the first, as bitnet's
    for _ in range(iters - 1):
        s.run(None, {"input": x})
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if iters == 1:  # the one run's CPU time
        cpu = time.process_time() - c_start
    cpu_ms = 1000 * cpu / (max(iters - 1, 1) * batch)
    print(json.dumps({"images_per_s": iters * batch / dt, "cpu_ms_per_image": cpu_ms}))


def ort_baseline():
    """(peak RSS of a Python child that imports numpy and onnxruntime, its version)."""
    code = "import numpy, onnxruntime; print(onnxruntime.__version__)"
    _, rss, out, _ = run_child([sys.executable, "-c", code])
    return rss, out.decode().strip()


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return "%s, %d cores, %s" % (cpu, os.cpu_count() or 0, platform.platform())


def loadavg():
    try:
        return open("/proc/loadavg").read().split()[:3]
    except OSError:
        return ["?"] * 3


def main(argv):
    if argv[:1] == ["--make-model"] and len(argv) == 3:
        make_model(argv[1], int(argv[2]))
        return 0
    if argv[:1] == ["--ort-worker"]:
        ort_worker(argv[1], argv[2], *[int(a) for a in argv[3:7]])
        return 0
    opts = {"--bitnet": os.path.join(ROOT, "build", "bitnet"),
            "--work": os.path.join(ROOT, "build", "bench-vision"), "--rounds": "5",
            "--iters": "4", "--batches": "1,8", "--threads": "1,2", "--size": "224"}
    want_json = False
    i = 0
    while i < len(argv):
        if argv[i] == "--json":
            want_json = True
            i += 1
        elif argv[i] in opts and i + 1 < len(argv):
            opts[argv[i]] = argv[i + 1]
            i += 2
        else:
            sys.stderr.write(__doc__)
            return 2
    bitnet, work = opts["--bitnet"], opts["--work"]
    rounds, iters, size = int(opts["--rounds"]), int(opts["--iters"]), int(opts["--size"])
    batches = [int(b) for b in opts["--batches"].split(",")]
    threads = [int(t) for t in opts["--threads"].split(",")]
    if iters < 1 or rounds < 1 or size < 32 or not os.access(bitnet, os.X_OK):
        die("needs --iters >= 1, --rounds >= 1, --size >= 32 and an executable --bitnet (%s)"
            % bitnet)
    os.makedirs(work, exist_ok=True)
    # the model is made by a child: a process that forks the measured ones must stay small,
    # since a forked child's peak RSS starts at its parent's (Linux carries it through exec)
    run_child([sys.executable, os.path.abspath(__file__), "--make-model", work, str(size)])
    src, onnx_path, imgs = model_paths(work, size)
    gguf = os.path.join(work, "resnet18-%d.gguf" % size)
    out = run_child([bitnet, "convert", src, "-o", gguf, "--force", "--json"])[2]
    val = json.loads(out).get("validation") or {}

    load0 = loadavg()
    rows = []
    for b in batches:
        for t in threads:
            got = {"bitnet": ([], [], []), "ort": ([], [], [])}  # img/s, RSS, CPU ms/img
            for r in range(rounds):
                for eng in (("bitnet", "ort") if r % 2 == 0 else ("ort", "bitnet")):
                    if eng == "bitnet":
                        m = bitnet_cell(bitnet, gguf, imgs, work, size, b, t, iters)
                    else:
                        m = ort_cell(onnx_path, imgs, size, b, t, iters)
                    for lst, v in zip(got[eng], m):
                        lst.append(v)
            row = {"batch": b, "threads": t}
            for eng in ("bitnet", "ort"):
                ips, rss, cpu = got[eng]
                row[eng + "_images_per_s"] = round(statistics.median(ips), 2)
                row[eng + "_rss_mb"] = round(max(rss), 1)
                row[eng + "_cpu_ms_per_image"] = round(statistics.median(cpu), 1)
                row[eng + "_rounds"] = [round(v, 2) for v in ips]
            mo, mt = row["bitnet_images_per_s"], row["ort_images_per_s"]
            row["ratio"] = round(mo / mt, 3) if mt else 0.0
            rows.append(row)
            print("batch %d threads %d: bitnet %.2f img/s, onnxruntime %.2f img/s" % (b, t, mo, mt),
                  file=sys.stderr, flush=True)
    load1 = loadavg()
    ort_rss, ort_version = ort_baseline()
    doc = {"model": "ResNet-18 %dx%d" % (size, size), "machine": machine(),
           "loadavg_before": load0, "loadavg_after": load1,
           "rounds": rounds, "iters": iters, "onnxruntime": ort_version,
           "gguf_bytes": os.path.getsize(gguf), "onnx_bytes": os.path.getsize(onnx_path),
           "ort_baseline_rss_mb": round(ort_rss, 1),
           "rss_floor_mb": round(run_child(["true"])[1], 1),
           "validation": {k: val.get(k) for k in ("images", "top1_agreement", "max_abs_diff")},
           "results": rows}
    if want_json:
        print(json.dumps(doc, indent=1))
        return 0
    print("%s, %s" % (doc["model"], doc["machine"]))
    print("load average before %s, after %s; median of %d rounds, %d batches per run; "
          "onnxruntime %s" % (" ".join(load0), " ".join(load1), rounds, iters,
                              doc["onnxruntime"]))
    print()
    print("| batch | threads | bitnet img/s | onnxruntime img/s | bitnet / ort "
          "| bitnet RSS MB | ort RSS MB | bitnet CPU ms/img | ort CPU ms/img "
          "| bitnet rounds | ort rounds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")

    def spread(v):
        return "%.2f-%.2f" % (min(v), max(v)) if v else "-"
    for r in rows:
        print("| %d | %d | %.2f | %.2f | %.2fx | %.0f | %.0f | %.1f | %.1f | %s | %s |" % (
            r["batch"], r["threads"], r["bitnet_images_per_s"], r["ort_images_per_s"],
            r["ratio"], r["bitnet_rss_mb"], r["ort_rss_mb"], r["bitnet_cpu_ms_per_image"],
            r["ort_cpu_ms_per_image"], spread(r["bitnet_rounds"]), spread(r["ort_rounds"])))
    print()
    v = doc["validation"]
    print("bitnet convert's check against PyTorch (the same weights with the ternary fake "
          "quantization) on %s images: top-1 agreement %s, largest logit difference %s"
          % (v["images"], v["top1_agreement"], v["max_abs_diff"]))
    print("files: GGUF %d bytes, ONNX %d bytes; a Python process with numpy and onnxruntime "
          "imported and nothing run: %.0f MB; RSS of `true` started the same way (the floor "
          "of any child): %.1f MB" % (doc["gguf_bytes"], doc["onnx_bytes"],
                                      doc["ort_baseline_rss_mb"], doc["rss_floor_mb"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
