"""SAM 3 served (``sam3_concepts``) against the same service in process, the backbone's FLOP
utilisation and the server's memory (issue 34's figures).

    .venv/bin/python benchmarks/sam3_served.py --export-dir exports/tiny [--repeats 3]

``--export-dir``: a SAM 2.1 export with SAM 3's graphs beside it (``sam2-triton export
--sam3``). Each repeat sends the sample photo with one pixel changed (a new image: its backbone
runs) and a phrase (a full request), then another phrase on that image by its id (a new phrase
on a cached image: no backbone), as one client over gRPC, RLE masks; in process, the same
requests to ``ConceptService`` with the same graphs (no Triton). Medians. The backbone's FLOPs
are counted on sam3's own ``forward_image`` (both necks) at full size with random weights, and
divided by the vision graph's time alone and the machine's best measured GEMM at the same
thread count, measured before and after the runs in process (the best of the two; the ISA's
theoretical peak printed beside). Memory: the sum of the server's
processes' own peak RSS (VmHWM). Prints JSON. Not a test.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sam2_triton import contract as c  # noqa: E402
from sam2_triton.bench import machine  # noqa: E402
from sam2_triton.bench.compute import best_gemm, counted_flops  # noqa: E402
from sam2_triton.bench.server import bench_server  # noqa: E402
from sam2_triton.clients.concepts import ConceptClient  # noqa: E402
from sam2_triton.concepts.find import ConceptGraphs  # noqa: E402
from sam2_triton.concepts.service import ConceptService  # noqa: E402
from sam2_triton.families import SAM3  # noqa: E402
from sam2_triton.image.embedding_cache import EmbeddingCache  # noqa: E402
from sam2_triton.image.transforms import preprocess_image  # noqa: E402
from sam2_triton.repository.options import ServingOptions  # noqa: E402

SAMPLE = ROOT / "src" / "sam2_triton" / "assets" / "coffee.jpg"
PHRASES = ["a cup", "a table", "a spoon", "a saucer", "a plate", "a hand", "a window", "a bag"]


def images(count: int) -> list[bytes]:
    """The sample photo with pixel (0, k) changed: ``count`` different images, same size."""
    rgb = np.asarray(Image.open(SAMPLE).convert("RGB")).copy()
    out = []
    for k in range(count):
        rgb[0, k] = (k * 37) % 256, 0, 0
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, "PNG")  # lossless: the change survives
        out.append(buffer.getvalue())
    return out


def request(data: bytes | None, image_id: str | None, phrase: str) -> dict:
    return {
        "image": None if data is None else np.frombuffer(data, np.uint8),
        "image_id": None if image_id is None else np.array([image_id.encode()], np.object_),
        "text": np.array([phrase.encode()], np.object_),
        "output_format": np.array([b"rle"], np.object_),
    }


def timed(call):
    start = time.perf_counter()
    value = call()
    return value, (time.perf_counter() - start) * 1e3


def in_process(folder: Path, pictures: list[bytes], threads: int) -> dict:
    graphs = ConceptGraphs.onnx(folder, folder / c.VOCABULARY_FILE, threads)
    with tempfile.TemporaryDirectory() as cache_dir:
        service = ConceptService(graphs, EmbeddingCache(Path(cache_dir), 8 << 30))
        service.handle(request(images(1)[0], None, "a warm-up"))
        full, phrase = [], []
        for k, data in enumerate(pictures):
            answer, ms = timed(lambda d=data, k=k: service.handle(request(d, None, PHRASES[k])))
            full.append(ms)
            image_id = bytes(answer["image_id"].reshape(-1)[0]).decode()
            _, ms = timed(lambda i=image_id, k=k: service.handle(request(None, i, PHRASES[-1 - k])))
            phrase.append(ms)
        service.cache.close()
    rgb = np.asarray(Image.open(SAMPLE).convert("RGB"))
    pixels = preprocess_image(rgb, SAM3)
    every = [o.name for o in graphs.vision.get_outputs()]  # both necks, as the FLOPs count
    backbone = [timed(lambda: graphs.vision.run(every, {"image": pixels}))[1]
                for _ in range(len(pictures))]  # fmt: skip
    return {"full_ms": full, "new_phrase_ms": phrase, "backbone_ms": backbone}


def served(export_dir: Path, pictures: list[bytes], work: Path) -> dict:
    with bench_server(export_dir, work, ServingOptions(concepts=True)) as server:
        with ConceptClient(server.grpc_url, "grpc") as client:
            client.find(image=images(1)[0], text="a warm-up", output_format="rle")
            full, phrase = [], []
            ask = {"output_format": "rle", "timeout_s": 600}
            for k, data in enumerate(pictures):
                found, ms = timed(lambda d=data, k=k: client.find(d, text=PHRASES[k], **ask))
                full.append(ms)
                known, new = found.image_id, PHRASES[-1 - k]
                _, ms = timed(lambda i=known, t=new: client.find(None, i, t, **ask))
                phrase.append(ms)
        peak = machine.tree_peak_rss_bytes(server.process.pid)
    return {"full_ms": full, "new_phrase_ms": phrase, "peak_rss_gb": round(peak / 1e9, 2)}


def backbone_flops() -> int:
    """sam3's ``forward_image`` (ViT and both necks) at 1008 x 1008, full size."""
    import torch

    from sam2_triton.concepts.tokens import clip_vocabulary
    from sam2_triton.export.sam3_export import build_random_sam3

    model = build_random_sam3(clip_vocabulary())
    image = torch.zeros(1, 3, 1008, 1008)
    return sum(counted_flops(lambda: model.backbone.forward_image(image)).values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export-dir", type=Path, default=Path("exports/tiny"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=machine.usable_cores())
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "sam3-served")
    args = parser.parse_args()
    if not (args.export_dir / c.SAM3_FILES["vision"]).is_file():
        sys.exit(f"{args.export_dir} has no SAM 3 graphs: run `sam2-triton export --sam3`")
    pictures = images(args.repeats + 1)[1:]  # the first is the warm-up's
    # The ceiling, measured before and after (on these VMs it moved between 312 and 407
    # GFLOP/s within a minute): the best of the two.
    gemms = [best_gemm(args.threads, n=4096, repeats=10)]
    local = in_process(args.export_dir, pictures, args.threads)
    gemms.append(best_gemm(args.threads, n=4096, repeats=10))
    remote = served(args.export_dir, pictures, args.work)
    flops = backbone_flops()
    gemm = max(gemms, key=lambda g: g["best_flops_per_s"])
    median = lambda values: round(float(np.median(values)), 1)  # noqa: E731
    backbone_s = median(local["backbone_ms"]) / 1e3
    achieved = flops / backbone_s
    utilisation = achieved / gemm["best_flops_per_s"]
    report = {
        "machine": machine.summary(),
        "threads": args.threads,
        "repeats": args.repeats,
        "served": {"full_ms": median(remote["full_ms"]),
                   "new_phrase_ms": median(remote["new_phrase_ms"]),
                   "peak_rss_gb": remote["peak_rss_gb"]},
        "in_process": {"full_ms": median(local["full_ms"]),
                       "new_phrase_ms": median(local["new_phrase_ms"]),
                       "backbone_ms": median(local["backbone_ms"])},
        "new_phrase_over_full_served": round(median(remote["new_phrase_ms"])
                                             / median(remote["full_ms"]), 3),
        "in_process_over_served_full": round(median(local["full_ms"])
                                             / median(remote["full_ms"]), 3),
        "backbone": {"gflop": round(flops / 1e9, 1),
                     "achieved_gflop_per_s": round(achieved / 1e9, 1),
                     "best_gemm_gflop_per_s": round(gemm["best_flops_per_s"] / 1e9, 1),
                     "best_gemm_library": gemm["best_library"],
                     "gemm_runs_gflop_per_s": [round(g["best_flops_per_s"] / 1e9, 1)
                                               for g in gemms],
                     "utilisation": round(utilisation, 3),
                     "theoretical_peak": machine.fp32_peak(args.threads)},
    }  # fmt: skip
    if utilisation > 1.0:
        report["backbone"]["error"] = "utilisation above 1: a measurement error"
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
