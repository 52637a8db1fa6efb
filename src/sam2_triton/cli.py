"""``sam2-triton``: download, export, build-repo, serve, segment, batch, bench, demo.

Paths default to folders under the current directory (the repository root when run by make):
``checkpoints/``, ``exports/<model>/``, ``model_repository/``, ``build/``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sam2_triton.contract import CPU_PRECISIONS
from sam2_triton.variants import VARIANTS, get_variant

if TYPE_CHECKING:  # imported lazily at run time: `segment` and `download` need neither
    from sam2_triton.gpu_config import GpuOptions
    from sam2_triton.repository import ServingOptions
    from sam2_triton.server import TritonServer

CHECKPOINT_DIR = Path("checkpoints")
EXPORT_ROOT = Path("exports")
REPOSITORY_DIR = Path("model_repository")
GPU_REPOSITORY_DIR = Path("model_repository_gpu")  # what docker-compose.yml mounts
RUNTIME_DIR = Path("build/tritonserver")
EXAMPLE_IMAGE = Path(__file__).resolve().parent / "assets" / "coffee.jpg"

EXPORT_TOLERANCE = 1e-3  # ORT vs PyTorch, max abs; a correct export is ~1e-5


class ExportCheckError(RuntimeError):
    """The exported ONNX files do not reproduce the PyTorch model."""


RANDOM_WEIGHTS_WARNING = """
##############################################################################
  WARNING: RANDOM WEIGHTS. The official SAM 2.1 checkpoint is not available,
  so this model has random weights (fixed seed): its masks are MEANINGLESS.
  Everything else (export, serving, protocol) is real. For real masks run
    sam2-triton download --model {model}     (needs access to Meta's host), or
    sam2-triton export --model {model} --checkpoint PATH
##############################################################################
"""


def random_checkpoint_path(model: str, seed: int) -> Path:
    stem = Path(get_variant(model).checkpoint_file).stem
    return CHECKPOINT_DIR / f"{stem}.random-seed{seed}.pt"


def _cmd_download(args: argparse.Namespace) -> int:
    from sam2_triton.checkpoints import download_checkpoint

    path = download_checkpoint(args.model, args.dir)
    print(f"checkpoint: {path}")
    return 0


def export_model(
    model: str,
    checkpoint: Path | None,
    random_weights: bool,
    seed: int,
    ort_fusions: bool = True,
) -> Path:
    """Export ``model`` to ``exports/<model>/`` and return that folder.

    ``ort_fusions=False`` keeps the graphs standard ONNX, which TensorRT can take whole.
    """
    from sam2_triton.export import build_sam2_model, export_onnx, verify_onnx

    out_dir = EXPORT_ROOT / model
    save_to = random_checkpoint_path(model, seed) if random_weights else None
    if random_weights:
        print(RANDOM_WEIGHTS_WARNING.format(model=model), file=sys.stderr)
    sam = build_sam2_model(
        model,
        checkpoint=checkpoint,
        random_weights=random_weights,
        seed=seed,
        save_random_to=save_to,
    )
    if save_to is not None:
        print(f"random-weight checkpoint saved: {save_to}")
    result = export_onnx(sam, out_dir, optimize=ort_fusions)
    print(
        f"exported {model} to {out_dir} in {result.total_seconds:.1f} s "
        f"({result.exporter} exporter, opset {result.opset})"
    )
    report = verify_onnx(sam, result.encoder_path, result.decoder_path)
    print(report.format())
    if report.max_abs > EXPORT_TOLERANCE:
        raise ExportCheckError(
            f"the ONNX files differ from PyTorch by {report.max_abs:.2e} "
            f"(> {EXPORT_TOLERANCE:g}); do not serve them"
        )
    return out_dir


def _cmd_export(args: argparse.Namespace) -> int:
    checkpoint = args.checkpoint
    if checkpoint is None and not args.random_weights:
        default = args.dir / get_variant(args.model).checkpoint_file
        if not default.exists():
            print(
                f"error: no checkpoint for {args.model}: run `sam2-triton download --model "
                f"{args.model}`, or pass --checkpoint PATH, or --random-weights (testing only)",
                file=sys.stderr,
            )
            return 2
        checkpoint = default
    export_model(args.model, checkpoint, args.random_weights, args.seed, not args.no_ort_fusions)
    return 0


def _serving_options(args: argparse.Namespace) -> ServingOptions:
    from sam2_triton.repository import ServingOptions

    return ServingOptions(
        encoder_instances=args.encoder_instances,
        decoder_instances=args.instances,
        python_instances=args.instances,
        cpu_precision=args.cpu_precision,
    )


def _gpu_options(args: argparse.Namespace) -> GpuOptions:
    """GpuOptions from the flags given; the others keep GpuOptions' defaults."""
    from sam2_triton.gpu_config import GpuOptions

    given = {
        "instances": args.gpu_instances,
        "gpus": tuple(args.gpus) if args.gpus else None,
        "precision": args.precision,
        "trt_cache_dir": args.trt_cache_dir,
        "decoder_tensorrt": args.decoder_tensorrt or None,
    }
    return GpuOptions(**{k: v for k, v in given.items() if v is not None})


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_gpus(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected GPU ids like 0,1, got {text!r}") from None


def build_repo(
    model: str,
    out: Path,
    options: ServingOptions | None = None,
    target: str = "embedded",
    gpu: GpuOptions | None = None,
) -> Path:
    from sam2_triton.gpu_config import export_notes
    from sam2_triton.repository import build_repository

    export_dir = EXPORT_ROOT / model
    changed = build_repository(export_dir, out, options, target=target, gpu=gpu)
    print(
        f"{target} model repository {'built' if changed else 'up to date'}: {out} (model {model})"
    )
    if target == "gpu":
        for note in export_notes(export_dir):
            print(f"note: {note}", file=sys.stderr)
    return out


def _cmd_build_repo(args: argparse.Namespace) -> int:
    gpu = args.target == "gpu"
    out = args.out or (GPU_REPOSITORY_DIR if gpu else REPOSITORY_DIR)
    build_repo(
        args.model,
        out,
        _serving_options(args),
        target=args.target,
        gpu=_gpu_options(args) if gpu else None,
    )
    return 0


def _add_server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument(
        "--instances", type=int, default=2, help="instances per model but the encoder"
    )
    parser.add_argument(
        "--encoder-instances",
        type=int,
        default=1,
        help="encoder instances (default 1: on a CPU one instance already uses every core)",
    )
    parser.add_argument(
        "--cpu-precision",
        choices=CPU_PRECISIONS,
        default="fp32",
        help="embedded encoder/decoder: fp32 (ONNX Runtime, default) or bf16 (OpenVINO, for CPUs "
        "with AVX512-BF16/AMX: ~3x faster encoder, masks differ slightly; docs/performance.md)",
    )


def start_server(
    args: argparse.Namespace, repository: Path, log_file: Path | None = None
) -> TritonServer:
    from sam2_triton.onnx_session import require_precision
    from sam2_triton.server import Ports, TritonServer

    require_precision(args.cpu_precision)  # say so now, not as a model load failure
    server = TritonServer(
        repository=repository.resolve(),
        runtime_dir=RUNTIME_DIR.resolve(),
        host=args.host,
        ports=Ports(args.http_port, args.grpc_port, args.metrics_port),
        log_file=log_file,
    )
    return server.start()


def _cmd_serve(args: argparse.Namespace) -> int:
    build_repo(args.model, args.repository, _serving_options(args))
    server = start_server(args, args.repository)
    print(
        f"serving SAM 2.1 {args.model}: HTTP {args.host}:{args.http_port}, "
        f"gRPC {args.host}:{args.grpc_port}, metrics {args.host}:{args.metrics_port} "
        "(Ctrl-C to stop)",
        flush=True,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set() and server.process.poll() is None:
        stop.wait(0.5)
    code = server.stop()
    print(f"tritonserver stopped (exit code {code})")
    return 0 if stop.is_set() else 1


def parse_point(text: str) -> tuple[float, float, int]:
    parts = text.split(",")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"expected X,Y or X,Y,LABEL, got {text!r}")
    label = int(parts[2]) if len(parts) == 3 else 1
    return float(parts[0]), float(parts[1]), label


def parse_box(text: str) -> np.ndarray:
    parts = text.split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"expected X0,Y0,X1,Y1, got {text!r}")
    return np.array([float(p) for p in parts], dtype=np.float32)


def segment_image(args: argparse.Namespace) -> Path:
    from sam2_triton.client import SegmentClient, save_result

    coords = labels = None
    if args.point:
        coords = np.array([p[:2] for p in args.point], dtype=np.float32)
        labels = np.array([p[2] for p in args.point], dtype=np.int32)
    image = Path(args.image).read_bytes()
    with SegmentClient(args.url, args.protocol) as client:
        start = time.perf_counter()
        output_format = None
        if args.cutout:
            output_format = "cutout_cropped" if args.crop else "cutout"
        result = client.segment(
            image, coords, labels, args.box, not args.single_mask, output_format=output_format
        )
        elapsed = time.perf_counter() - start
    files = save_result(result, args.out, image)
    if args.cutout:
        best = int(np.argmax(result.iou_scores))
        args.cutout.parent.mkdir(parents=True, exist_ok=True)
        args.cutout.write_bytes(result.encoded_masks[best])
        files.append(args.cutout)
    print(
        f"{len(result.masks)} mask(s) of {result.masks.shape[1]}x{result.masks.shape[2]} in "
        f"{elapsed:.2f} s over {args.protocol}; IoU scores "
        f"{', '.join(f'{s:.3f}' for s in result.iou_scores)}"
    )
    print("wrote " + ", ".join(str(f) for f in files))
    return args.out


def _cmd_segment(args: argparse.Namespace) -> int:
    if not args.point and args.box is None:
        print("error: give at least one --point X,Y[,LABEL] or a --box", file=sys.stderr)
        return 2
    segment_image(args)
    return 0


def parse_automatic_param(text: str) -> tuple[str, float | int | bool]:
    """NAME=VALUE for one SAM2AutomaticMaskGenerator parameter, typed as sam2_automatic takes it."""
    from sam2_triton.contract import AUTOMATIC_PARAMETERS

    name, sep, value = text.partition("=")
    dtypes = {t.name: t.dtype for t in AUTOMATIC_PARAMETERS}
    if not sep or name not in dtypes:
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE with NAME one of {', '.join(dtypes)}; got {text!r}"
        )
    try:
        if dtypes[name] == "BOOL":
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return name, value.lower() in ("true", "1")
        return name, int(value) if dtypes[name] == "INT32" else float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{name}: {value!r} is not a valid {dtypes[name]} value"
        ) from None


def _cmd_batch(args: argparse.Namespace) -> int:
    from sam2_triton.batch import BatchOptions, run_batch
    from sam2_triton.batch.runner import abandon

    options = BatchOptions(
        input_dir=args.input_dir,
        out_dir=args.out,
        prompts=args.prompts,
        url=args.url,
        protocol=args.protocol,
        concurrency=args.concurrency,
        automatic_params=dict(args.automatic or []),
        timeout_s=args.timeout,
        report=not args.no_report,
        progress=not args.no_progress,
    )
    result = run_batch(options)
    s = result.summary
    print(
        f"{s['finished_this_run']} image(s) done in {s['wall_seconds']:.1f} s "
        f"({s['images_per_second']:.3f} img/s), {s['skipped_already_finished']} already done, "
        f"{s['failed_this_run']} failed, {s['not_started']} not started; "
        f"{s['finished_total']}/{s['images_found']} finished in {args.out}"
    )
    for failure in s["failures"]:
        print(f"  failed: {failure['file_name']}: {failure['error']}")
    for name in s["prompts_without_image"]:
        print(f"  warning: the prompts file names {name!r}, which is not in {args.input_dir}")
    print(f"summary: {args.out / 'summary.json'}")
    if not args.no_report:
        print(f"report: {args.out / 'report' / 'index.html'}")
    if result.interrupted:
        abandon(result.exit_code)  # threads may still wait on the server: do not join them
    return result.exit_code


def _cmd_demo(args: argparse.Namespace) -> int:
    """Weights -> export -> serve -> segment the shipped example image -> stop."""
    from sam2_triton.checkpoints import CheckpointDownloadError, download_checkpoint

    model = args.model
    checkpoint: Path | None = None
    random_weights = False
    try:
        checkpoint = download_checkpoint(model, CHECKPOINT_DIR)
    except CheckpointDownloadError as exc:
        print(f"download failed: {exc}", file=sys.stderr)
        random_weights = True
    export_dir = EXPORT_ROOT / model
    info = export_dir / "export.json"
    if not info.exists() or _export_source_differs(info, checkpoint):
        export_model(model, checkpoint, random_weights, seed=0)
    elif random_weights:
        print(RANDOM_WEIGHTS_WARNING.format(model=model), file=sys.stderr)
    build_repo(model, args.repository, _serving_options(args))
    log = Path("build/demo-tritonserver.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"starting tritonserver (log: {log}) ...", flush=True)
    server = start_server(args, args.repository, log_file=log)
    try:
        height, width = _image_size(EXAMPLE_IMAGE)
        seg = argparse.Namespace(
            image=EXAMPLE_IMAGE,
            point=[(width * 0.45, height * 0.45, 1)],
            box=None,
            single_mask=False,
            protocol="http",
            url=f"{args.host}:{args.http_port}",
            out=args.out,
            cutout=None,
            crop=False,
        )
        segment_image(seg)
        seg.protocol, seg.url = "grpc", f"{args.host}:{args.grpc_port}"
        seg.single_mask, seg.out = True, args.out / "grpc_single"
        seg.cutout, seg.crop = seg.out / "cutout.png", True
        segment_image(seg)
    finally:
        server.stop()
    print(f"\ndemo done: masks and scores are in {args.out.resolve()}")
    if random_weights:
        print(RANDOM_WEIGHTS_WARNING.format(model=model), file=sys.stderr)
    return 0


def _export_source_differs(info: Path, checkpoint: Path | None) -> bool:
    recorded = json.loads(info.read_text())
    if checkpoint is None:
        return recorded.get("seed") is None
    return recorded.get("seed") is not None


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.height, image.width


def _cmd_bench(args: argparse.Namespace) -> int:
    from sam2_triton.bench.report import format_table, write
    from sam2_triton.bench.run import BenchConfig, run_bench

    export_dir = EXPORT_ROOT / args.model
    if not (export_dir / "export.json").exists():
        print(f"error: no export in {export_dir}: run `sam2-triton export` first", file=sys.stderr)
        return 2
    from sam2_triton.onnx_session import require_precision
    from sam2_triton.repository import ServingOptions

    require_precision(args.cpu_precision)
    config = BenchConfig(
        export_dir=export_dir,
        out_dir=args.out,
        runtime_dir=RUNTIME_DIR.resolve(),
        quick=args.quick,
        options=ServingOptions(cpu_precision=args.cpu_precision),
    )
    report = run_bench(config)
    json_path, png_path = write(report, args.out)
    print(format_table(report))
    print(f"written: {json_path}, {png_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sam2-triton", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    models = list(VARIANTS)

    p = sub.add_parser("download", help="fetch an official SAM 2.1 checkpoint (sha256-checked)")
    p.add_argument("--model", choices=models, default="tiny")
    p.add_argument("--dir", type=Path, default=CHECKPOINT_DIR)
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("export", help="export the ONNX image encoder and mask decoder")
    p.add_argument("--model", choices=models, default="tiny")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--checkpoint", type=Path, help='a checkpoint in the official {"model": ...} format'
    )
    source.add_argument(
        "--random-weights", action="store_true", help="random weights (testing only)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for --random-weights")
    p.add_argument(
        "--no-ort-fusions",
        action="store_true",
        help="standard ONNX only, without onnxruntime's fused ops (for TensorRT, see docs/gpu.md)",
    )
    p.add_argument("--dir", type=Path, default=CHECKPOINT_DIR, help="where downloads are")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("build-repo", help="write the Triton model repository for an export")
    p.add_argument("--model", choices=models, default="tiny")
    p.add_argument(
        "--target",
        choices=("embedded", "gpu"),
        default="embedded",
        help="embedded: what `serve` runs (CPU); gpu: the NGC tritonserver image (docs/gpu.md)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help=f"default: {REPOSITORY_DIR}/ (embedded), {GPU_REPOSITORY_DIR}/ (gpu)",
    )
    p.add_argument(
        "--instances", type=int, default=2, help="instances per CPU model but the encoder"
    )
    p.add_argument("--encoder-instances", type=int, default=1, help="embedded encoder instances")
    p.add_argument(
        "--cpu-precision", choices=CPU_PRECISIONS, default="fp32", help="embedded target only"
    )
    gpu = p.add_argument_group("gpu target")
    gpu.add_argument("--gpu-instances", type=int, help="encoder/decoder per GPU (default 2)")
    gpu.add_argument("--gpus", type=parse_gpus, help="GPU ids, e.g. 0,1 (default: all)")
    gpu.add_argument("--precision", choices=("FP16", "FP32"), help="TensorRT (default FP16)")
    gpu.add_argument(
        "--trt-cache-dir", help="TensorRT engine cache in the container (default /trt_cache)"
    )
    gpu.add_argument(
        "--decoder-tensorrt",
        action="store_true",
        help="run the decoder on TensorRT too (default: CUDA EP, see docs/gpu.md)",
    )
    p.set_defaults(func=_cmd_build_repo)

    p = sub.add_parser("serve", help="run the embedded tritonserver until Ctrl-C / SIGTERM")
    p.add_argument("--model", choices=models, default="tiny")
    p.add_argument("--repository", type=Path, default=REPOSITORY_DIR)
    _add_server_args(p)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("segment", help="segment an image through a running server")
    p.add_argument("image", type=Path)
    p.add_argument("--point", type=parse_point, action="append", help="X,Y[,LABEL] (1 fg, 0 bg)")
    p.add_argument("--box", type=parse_box, help="X0,Y0,X1,Y1")
    p.add_argument("--single-mask", action="store_true", help="one mask instead of three")
    p.add_argument("--protocol", choices=("http", "grpc"), default="http")
    p.add_argument("--url", help="host:port (default 127.0.0.1:8000 http, :8001 grpc)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--cutout", type=Path, help="also write the best mask's object as an RGBA PNG here"
    )
    p.add_argument("--crop", action="store_true", help="crop the cut-out to the object's box")
    p.set_defaults(func=_cmd_segment)

    p = sub.add_parser(
        "batch",
        help="masks for every image of a folder (prompts file or automatic), resumable",
        description="Segment every image under INPUT_DIR through a running server: images named "
        "in --prompts get one mask per labelled object, the others automatic masks. Finished "
        "images are skipped, so an interrupted run is resumed by running it again.",
    )
    p.add_argument("input_dir", type=Path, metavar="INPUT_DIR")
    p.add_argument("--prompts", type=Path, help='JSON: {"file name": {"label": [[x, y], ...]}}')
    p.add_argument("--out", type=Path, required=True, metavar="OUT_DIR")
    p.add_argument(
        "--concurrency", type=positive_int, default=4, help="requests in flight (default 4)"
    )
    p.add_argument("--protocol", choices=("http", "grpc"), default="http")
    p.add_argument("--url", help="host:port (default 127.0.0.1:8000 http, :8001 grpc)")
    p.add_argument(
        "--automatic",
        type=parse_automatic_param,
        action="append",
        metavar="NAME=VALUE",
        help="a SAM2AutomaticMaskGenerator parameter for images without prompts, e.g. "
        "points_per_side=16 (repeatable)",
    )
    p.add_argument(
        "--timeout", type=positive_int, default=3600, help="seconds per request (default 3600)"
    )
    p.add_argument("--no-report", action="store_true", help="skip the HTML report and plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_batch)

    p = sub.add_parser("bench", help="throughput, latency and ratios against alternatives")
    p.add_argument("--model", choices=sorted(VARIANTS), default="tiny")
    p.add_argument("--quick", action="store_true", help="fewer requests (< 5 min on 2 cores)")
    p.add_argument(
        "--cpu-precision",
        choices=CPU_PRECISIONS,
        default="fp32",
        help="the served models' and the in-process baseline's precision (bf16: OpenVINO)",
    )
    p.add_argument("--out", type=Path, default=Path("outputs/bench"))
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("demo", help="weights, export, serve, segment the example image, stop")
    p.add_argument("--model", choices=models, default="tiny")
    p.add_argument("--repository", type=Path, default=REPOSITORY_DIR)
    p.add_argument("--out", type=Path, default=Path("outputs/demo"))
    _add_server_args(p)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sam2_triton.batch.runner import ServerUnavailableError
    from sam2_triton.batch.store import OutputLockedError
    from sam2_triton.checkpoints import CheckpointDownloadError
    from sam2_triton.onnx_session import PrecisionUnavailableError
    from sam2_triton.repository import RepositoryError
    from sam2_triton.server import ServerError

    try:
        return args.func(args)
    except (
        CheckpointDownloadError,
        RepositoryError,
        ServerError,
        ExportCheckError,
        ServerUnavailableError,
        OutputLockedError,
        PrecisionUnavailableError,
        FileNotFoundError,
        ValueError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
