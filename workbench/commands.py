"""Handlers of the CLI subcommands (thin: parse -> library call -> print)."""

from __future__ import annotations

import argparse
import sys

from .cli import UserError, command, print_json


@command("zoo")
def zoo(args: argparse.Namespace) -> int:
    """Print the scheme complexity table."""
    from .models.complexity import zoo_table

    table = zoo_table(
        args.backbone, args.frames, args.size, args.classes,
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


@command("probe-data")
def probe_data(args: argparse.Namespace) -> int:
    """Write the temporal probe dataset."""
    from .probe import write_probe_dataset

    if args.clips_per_class < 1:
        raise UserError("--clips-per-class must be at least 1")
    out = write_probe_dataset(args.out, args.clips_per_class, args.seed, args.frames, args.size)
    print(f"wrote probe dataset to {out}")
    return 0


@command("predict")
def predict(args: argparse.Namespace) -> int:
    """Top-K classes of one video."""
    import torch

    from .models import load_model
    from .video import load_clip

    model = load_model(args.checkpoint, unsafe_pickle=args.unsafe_pickle)
    clip = load_clip(args.video, model.spec)
    with torch.inference_mode():
        probs = model(clip).softmax(dim=1)[0]
    top = probs.topk(min(args.top, probs.numel()))
    for p, i in zip(top.values.tolist(), top.indices.tolist()):
        print(f"{p:7.2%}  {model.spec.class_names[i]}")
    return 0


@command("train")
def train(args: argparse.Namespace) -> int:
    """Train one model."""
    from .train import TrainConfig, train_model

    config = TrainConfig(
        scheme=args.scheme, data=str(args.data), out=str(args.out), backbone=args.backbone,
        frames=args.frames, size=args.size, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, val_data=str(args.val_data) if args.val_data else None,
        threads=args.threads,
    )
    result = train_model(config, resume=not args.no_resume)
    print(f"best val accuracy {result['best_val_acc']:.2%} -> {args.out}")
    return 0


@command("evaluate")
def evaluate(args: argparse.Namespace) -> int:
    """Accuracy overall, per class kind, per class, and reverse -> mirror."""
    from .evaluate import evaluate_checkpoint, format_report

    report = evaluate_checkpoint(args.checkpoint, args.data)
    if args.format == "json":
        print_json(report)
    else:
        print(format_report(report))
    return 0


@command("demo")
def demo(args: argparse.Namespace) -> int:
    """List or regenerate the shipped demo models."""
    from .demo import demo_manifest, train_demo_zoo

    if args.train:
        train_demo_zoo(args.schemes or None)
    manifest = demo_manifest()
    if args.list or not args.train:
        for entry in manifest["models"]:
            acc = entry.get("metrics", {}).get("accuracy")
            acc_text = f"{acc:.1%}" if isinstance(acc, float) else "-"
            print(f"{entry['scheme']:10s} {acc_text:>7s}  {entry['file']}  sha256 {entry['sha256'][:12]}")
    return 0
