"""Model CLI subcommands: zoo, probe-data, predict, train, evaluate, demo (parse -> library -> print)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..demo import DEMO_SCHEMES
from ..errors import UserError
from ..models.schemes import available_schemes
from .args import add_decoder_arg, add_model_option_args, add_run_args, model_overrides, print_json
from .progress import add_quiet_arg, progress_bar


def register(sub: argparse._SubParsersAction) -> None:
    """Add the core subcommands."""
    p = sub.add_parser("zoo", help="parameters, FLOPs and CPU latency of every scheme",
                       description="Parameters, FLOPs and CPU latency of the schemes: "
                                   + ", ".join(available_schemes()) + ".")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--schemes", nargs="+", choices=available_schemes(), metavar="SCHEME",
                   help="only these schemes (default: all)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--classes", type=int, default=174, help="classifier width (default: Something-v1's 174)")
    p.add_argument("--repeats", type=int, default=3, help="timed forward passes per scheme")
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(handler=zoo)

    p = sub.add_parser("probe-data", help="generate the temporal probe dataset")
    p.add_argument("out", type=Path)
    p.add_argument("--clips-per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--appearance-free", action="store_true",
                   help="every frame i.i.d. noise: each class's object is a noise texture moved by the "
                        "class's motion, visible only through motion (after Ilic et al., ECCV 2022)")
    p.add_argument("--pairs", action="store_true",
                   help="a pair set for static-dynamic instead: per class --clips-per-class pairs sharing "
                        "the look (a clip and its reverse) and pairs sharing the motion (another look)")
    p.set_defaults(handler=probe_data)

    p = sub.add_parser("predict", help="classify one video with a checkpoint")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("video", type=Path)
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--unsafe-pickle", action="store_true",
                   help="allow checkpoints that need weights_only=False (runs code from the file)")
    add_model_option_args(p)
    add_run_args(p)
    p.set_defaults(handler=predict)

    p = sub.add_parser("train", help="train a model on a video dataset")
    p.add_argument("--scheme", required=True, choices=available_schemes(),
                   help="how the model mixes time: " + ", ".join(available_schemes()))
    p.add_argument("--data", type=Path, required=True, help="dataset folder (e.g. probe data)")
    p.add_argument("--val-data", type=Path, help="validation dataset (default: a split of --data)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write")
    p.add_argument("--backbone", default="resnet-tiny")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--order-free-p", type=float, default=0.0,
                   help="probability of showing a clip of a static (order-free) class in random frame order")
    p.add_argument("--no-resume", action="store_true", help="ignore a saved training state")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first video that cannot be decoded (default: skip it and list it)")
    add_decoder_arg(p)
    p.set_defaults(handler=train)

    p = sub.add_parser("evaluate", help="accuracy, per-class and reverse->mirror on a dataset")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_run_args(p)
    p.add_argument("--strict", action="store_true",
                   help="stop at the first video that cannot be decoded (default: skip it and list it)")
    add_quiet_arg(p)
    p.set_defaults(handler=evaluate)

    p = sub.add_parser("demo", help="list, re-measure or retrain the shipped demo models")
    p.add_argument("--list", action="store_true")
    p.add_argument("--train", action="store_true", help="regenerate every demo model from scratch")
    p.add_argument("--evaluate", action="store_true",
                   help="measure the shipped models again on the fresh test seed (updates the manifest)")
    p.add_argument("--schemes", nargs="*", choices=available_schemes(), metavar="SCHEME",
                   help="only these schemes (with --train; default: " + " ".join(DEMO_SCHEMES) + ")")
    p.add_argument("--appearance-free", action="store_true",
                   help="the zoo trained on the appearance-free probe (assets/models_af, manifest_af.json)")
    p.set_defaults(handler=demo)


def zoo(args: argparse.Namespace) -> int:
    """Print the scheme complexity table."""
    from ..models.complexity import zoo_table

    table = zoo_table(
        args.backbone, args.frames, args.size, args.classes, schemes=args.schemes,
        repeats=args.repeats, latency=not args.no_latency,
    )
    if args.format == "csv":
        table.to_csv(sys.stdout, index=False, float_format="%.6g")
    elif args.format == "json":
        print_json({"config": table.attrs, "schemes": table.to_dict(orient="records")})
    else:
        print(f"backbone={args.backbone} frames={args.frames} size={args.size} classes={args.classes}")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


def probe_data(args: argparse.Namespace) -> int:
    """Write the temporal probe dataset."""
    from ..probe import write_pair_dataset, write_probe_dataset

    if args.clips_per_class < 1:
        raise UserError("--clips-per-class must be at least 1")
    if args.size % 2 or args.size < 16 or args.frames < 2:
        raise UserError("--size must be even and at least 16, --frames at least 2")
    write = write_pair_dataset if args.pairs else write_probe_dataset
    out = write(args.out, args.clips_per_class, args.seed, args.frames, args.size,
                appearance_free=args.appearance_free)
    kind = "pair set" if args.pairs else "probe dataset"
    kind = f"appearance-free {kind}" if args.appearance_free else kind
    print(f"wrote {kind} to {out}")
    return 0


def predict(args: argparse.Namespace) -> int:
    """Top-K classes of one video."""
    from ..device import prepare_model, resolve_amp, resolve_device
    from ..models import load_model
    from ..models.inference import predict_logits
    from ..video import load_clip

    device = resolve_device(args.device)
    amp = resolve_amp(args.amp, device)
    model = load_model(args.checkpoint, unsafe_pickle=args.unsafe_pickle, **model_overrides(args))
    model = prepare_model(model, device)
    clip = load_clip(args.video, model.spec)
    probs = predict_logits(model, clip, amp=amp, memory=args.max_memory).softmax(dim=1)[0]
    top = probs.topk(min(args.top, probs.numel()))
    for p, i in zip(top.values.tolist(), top.indices.tolist()):
        print(f"{p:7.2%}  {model.spec.class_names[i]}")
    return 0


def train(args: argparse.Namespace) -> int:
    """Train one model."""
    from ..train import TrainConfig, train_model

    config = TrainConfig(
        scheme=args.scheme, data=str(args.data), out=str(args.out), backbone=args.backbone,
        frames=args.frames, size=args.size, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, val_data=str(args.val_data) if args.val_data else None,
        threads=args.threads, order_free_p=args.order_free_p, strict=args.strict,
    )
    result = train_model(config, resume=not args.no_resume)
    print(f"best val accuracy {result['best_val_acc']:.2%} -> {args.out}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Accuracy overall, per class kind, per class, and reverse -> mirror."""
    from ..device import resolve_amp, resolve_device
    from ..evaluate import evaluate_checkpoint, format_report

    device = resolve_device(args.device)
    amp = resolve_amp(args.amp, device)
    with progress_bar("evaluating", "videos", args.quiet) as update:
        report = evaluate_checkpoint(args.checkpoint, args.data, device=device, amp=amp, strict=args.strict,
                                     progress=update, memory=args.max_memory)
    if args.format == "json":
        print_json(report)
    else:
        print(format_report(report))
    return 0


def demo(args: argparse.Namespace) -> int:
    """List or regenerate the shipped demo models."""
    from ..demo import demo_manifest, reevaluate_demo_zoo, train_demo_zoo

    free = args.appearance_free
    if args.train:
        train_demo_zoo(args.schemes or None, appearance_free=free)
    if args.evaluate:
        reevaluate_demo_zoo(appearance_free=free)
    manifest = demo_manifest(appearance_free=free)
    if not manifest["models"]:
        flag = " --appearance-free" if free else ""
        raise UserError(f"no demo models shipped; run `python -m workbench demo --train{flag}`")
    if args.list or not (args.train or args.evaluate):
        for entry in manifest["models"]:
            acc = entry.get("metrics", {}).get("accuracy")
            acc_text = f"{acc:.1%}" if isinstance(acc, float) else "-"
            print(f"{entry['scheme']:10s} {acc_text:>7s}  {entry['file']}  sha256 {entry['sha256'][:12]}")
    return 0
