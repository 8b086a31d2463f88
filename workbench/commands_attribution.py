"""CLI `attribute`: Captum attribution maps of one video, or attribution quality over a dataset.

One video: maps (npz), figures (html) and per model x method metrics (summary.csv).
`--data DIR`: per-clip metrics (results.parquet) and a per model x method table with bootstrap
95% intervals (summary.csv). Both write run.json (provenance).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .cli import UserError
from .device import add_device_args
from .model_options import add_model_option_args, model_overrides

DEFAULT_METHODS = ("saliency", "integrated_gradients", "gradcam", "temporal_ablation")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `attribute` subcommand."""
    from analysis.attribution import METHODS

    p = sub.add_parser("attribute", help="Captum attribution maps and their quality metrics",
                       description="Attribute one VIDEO (maps, figures, metrics) or score a dataset "
                                   "(--data: localisation, faithfulness, bootstrap intervals).")
    p.add_argument("video", type=Path, nargs="?", help="video to attribute (omit with --data)")
    p.add_argument("--model", type=Path, action="append", required=True, metavar="CKPT",
                   help="checkpoint; repeat to compare models")
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), metavar="METHOD",
                   help=f"any of: {', '.join(METHODS)}, or 'all' (default: {' '.join(DEFAULT_METHODS)})")
    p.add_argument("--target", default=None,
                   help="class to explain: predicted, mirror (of the predicted class, or of the true class "
                        "with --data), true (--data only), a class name or index "
                        "(default: predicted; true with --data)")
    p.add_argument("--data", type=Path, help="dataset folder: score every clip (masks: probe datasets)")
    p.add_argument("--max-clips", type=int, default=None, help="at most this many clips, spread over classes")
    p.add_argument("--steps", type=int, default=32, help="Integrated Gradients steps")
    p.add_argument("--curve-steps", type=int, default=16, help="points on the pixel deletion/insertion curve")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (and SmoothGrad noise)")
    p.add_argument("--sanity", action="store_true",
                   help="one video: also run the randomisation check (last two layers randomised)")
    p.add_argument("--out", type=Path, required=True, help="run directory to write")
    p.add_argument("--chunk-clips", type=int, default=8,
                   help="--data: clips per part file (the unit of resumption and of sharing between ranks)")
    add_model_option_args(p)
    add_device_args(p)
    p.set_defaults(handler=attribute_command)


def _methods(requested: list[str]) -> list[str]:
    from analysis.attribution import METHODS

    if requested == ["all"]:
        return list(METHODS)
    unknown = [m for m in requested if m not in METHODS]
    if unknown:
        raise UserError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)} or 'all'")
    return list(dict.fromkeys(requested))


def _model_names(paths: list[Path]) -> list[str]:
    """File stems, made unique with a counter when two checkpoints share a name."""
    names: list[str] = []
    for path in paths:
        name, n = path.stem, 2
        while name in names:
            name, n = f"{path.stem}-{n}", n + 1
        names.append(name)
    return names


def _dataset_fingerprint(path: Path) -> str:
    """sha256 over the label list and file sizes: changes when the data does."""
    from .datasets import open_dataset

    items = open_dataset(path).items
    lines = [f"{Path(i.path).name},{i.label},{Path(i.path).stat().st_size}" for i in items]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _provenance(args: argparse.Namespace, names: list[str], methods: list[str]) -> dict[str, Any]:
    import captum
    import decord
    import torch

    from . import __version__
    from .models import file_sha256

    return {
        "command": "python -m workbench " + " ".join(sys.argv[1:]) if sys.argv[1:] else "attribute",
        "analysis": "attribution",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {"torch": torch.__version__, "captum": captum.__version__,
                     "decord": decord.__version__, "workbench": __version__},
        "seeds": {"bootstrap": args.seed, "smoothgrad": args.seed},
        "checkpoints": [{"name": name, "path": str(path), "sha256": file_sha256(path)}
                        for name, path in zip(names, args.model)],
        "methods": methods,
        "target": args.target,
        "options": {"ig_steps": args.steps, "curve_steps": args.curve_steps, "bootstrap": args.bootstrap},
        "video": ({"path": str(args.video), "sha256": file_sha256(args.video)} if args.video else None),
        "dataset": ({"path": str(args.data), "fingerprint": _dataset_fingerprint(args.data),
                     "max_clips": args.max_clips} if args.data else None),
    }


def _video_target(choice: str | None, predicted: int, spec: Any) -> int:
    """The class index to explain on a single video (no true label is known there)."""
    if choice in (None, "predicted"):
        return predicted
    if choice == "mirror":
        mirror = spec.mirror_index(predicted)
        if mirror is None:
            raise UserError(f"class {spec.class_names[predicted]!r} has no temporal mirror")
        return mirror
    if choice == "true":
        raise UserError("--target true needs labels: use it with --data")
    if choice in spec.class_names:
        return spec.class_names.index(choice)
    if choice.isdigit() and int(choice) < spec.num_classes:
        return int(choice)
    raise UserError(f"unknown target class {choice!r} for a model with classes {', '.join(spec.class_names)}")


def _attribute_video(args: argparse.Namespace, models: dict[str, Any], methods: list[str], out: Path) -> Any:
    """Maps, figures and one metrics row per model x method for one video."""
    import numpy as np
    import pandas as pd
    import torch

    from analysis.attribution import display_frames, predicted_class, temporal_profile, temporal_spread
    from analysis.attribution_figures import curves_figure, overlay_grid, profile_figure
    from analysis.attribution_metrics import clip_mask, randomization_check, score_clip
    from analysis.gates import probe_mask

    from .video import load_clips

    video_mask = probe_mask(args.video)
    rows, results, frames, curves_input = [], {}, {}, {}
    agreements: list[dict[str, Any]] = []
    (out / "maps").mkdir(parents=True, exist_ok=True)
    clips = load_clips(args.video, [model.spec for model in models.values()])  # the video decoded once
    for (name, model), clip in zip(models.items(), clips):
        spec = model.spec
        clip = clip.unsqueeze(0)
        frames[name] = display_frames(clip, spec)
        predicted = predicted_class(model, clip)
        target = _video_target(args.target, predicted, spec)
        mask = clip_mask(video_mask, spec) if video_mask is not None else None
        arrays: dict[str, np.ndarray] = {}
        for method in methods:
            print(f"{name}: {method}", file=sys.stderr)
            torch.manual_seed(args.seed)  # SmoothGrad's noise
            row, result = score_clip(model, clip, method, target, mask=mask, curve_steps=args.curve_steps,
                                     steps=args.steps)
            profile = temporal_profile(result.map)
            if args.sanity:
                steps = randomization_check(model, clip, method, target, steps=args.steps)
                row["sanity_rank_corr"] = steps[-1].rank_correlation
            rows.append({"model": name, "scheme": spec.scheme, "method": method,
                         "target_name": spec.class_names[target], "predicted": spec.class_names[predicted],
                         **row, "ig_delta": result.delta,
                         "profile": json.dumps(np.round(profile, 5).tolist())})
            results[(name, method)] = result
            curves_input[(name, method)] = (model, clip, target)
            arrays[method] = result.map
            if result.raw is not None:
                arrays[f"{method}_raw"] = result.raw
        np.savez_compressed(out / "maps" / f"{name}.npz", **arrays)
        _agreement_rows(agreements, "methods", name, {m: results[(name, m)].map for m in methods})
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    from analysis.attribution_metrics import deletion_insertion

    for method in methods:
        maps = {name: results[(name, method)].map for name in models}
        if len({m.shape for m in maps.values()}) == 1:  # models of one input size: comparable maps
            _agreement_rows(agreements, "models", method, maps)
        profiles = {name: temporal_profile(m) for name, m in maps.items()}
        spreads = {name: temporal_spread(p) for name, p in profiles.items()}
        curves = {}
        for name in models:
            model, clip, target = curves_input[(name, method)]
            curves[name] = deletion_insertion(model, clip, maps[name], target, steps=args.curve_steps)
        for kind, fig in (("grid", overlay_grid(frames, maps, title=method)),
                          ("profile", profile_figure(profiles, spreads)), ("curves", curves_figure(curves))):
            # plotly.js once per folder, not inlined in every file (~4.8 MB each)
            fig.write_html(figures / f"{method}_{kind}.html", include_plotlyjs="directory")
            (figures / f"{method}_{kind}.json").write_text(fig.to_json())  # for `report`
    pd.DataFrame(agreements, columns=["between", "within", "a", "b", "rank_correlation"]).to_csv(
        out / "agreement.csv", index=False)
    return pd.DataFrame(rows)


def _agreement_rows(rows: list[dict[str, Any]], between: str, within: str, maps: dict[str, Any]) -> None:
    """Append each pair's rank correlation (methods of one model, or models under one method)."""
    from analysis.attribution_metrics import agreement_table

    names = list(maps)
    table = agreement_table(maps)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            rows.append({"between": between, "within": within, "a": names[i], "b": names[j],
                         "rank_correlation": float(table[i, j])})


def attribute_command(args: argparse.Namespace) -> int:
    """Run the attribution command; returns the exit status."""
    import pandas as pd

    from analysis.attribution_metrics import score_dataset, summarize_scores

    from . import distributed
    from .device import peak_memory, prepare_model, resolve_device
    from .models import load_model

    methods = _methods(args.methods)
    if (args.video is None) == (args.data is None):
        raise UserError("give either a VIDEO or --data DIR (not both)")
    if args.data is not None and not args.data.is_dir():
        raise UserError(f"--data {str(args.data)!r} is not a folder")
    if args.video is not None and not args.video.exists():
        raise UserError(f"no such video: {str(args.video)!r}")
    if args.amp != "off":
        raise UserError("--amp is for inference-only commands: attribution needs full-precision gradients")
    device = resolve_device(args.device)
    if distributed.env_context().distributed and args.data is None:
        raise UserError("several processes (torchrun) share a --data run; attribute one VIDEO in one process")
    if args.chunk_clips < 1:
        raise UserError("--chunk-clips must be >= 1")
    names = _model_names(args.model)
    models = {name: prepare_model(load_model(path, **model_overrides(args)), device)
              for name, path in zip(names, args.model)}
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    run = _provenance(args, names, methods)
    if args.video is not None:
        results = _attribute_video(args, models, methods, out)
        summary = results.drop(columns=["profile"])
    else:
        target = args.target or "true"
        if target not in ("true", "predicted", "mirror") and not target.isdigit():
            raise UserError("with --data, --target is true, predicted, mirror or a class index")
        chosen: str | int = int(target) if target.isdigit() else target
        # torchrun (one node or several) describes the process group in the environment
        context = distributed.init_from_env(device)
        # what decides the rows (GPU and CPU round differently): a resumed run must match it
        key = {k: run[k] for k in ("checkpoints", "methods", "target", "options", "dataset", "seeds")}
        key["device"] = device.type
        key["options"] = {k: v for k, v in run["options"].items() if k != "bootstrap"}  # summary only
        try:
            results = score_dataset(models, args.data, methods, target=chosen, max_clips=args.max_clips,
                                    progress=True, curve_steps=args.curve_steps, steps=args.steps,
                                    out=out, chunk_clips=args.chunk_clips, seed=args.seed, key=key)
            memory = distributed.gather({"rank": context.rank, **peak_memory(device)})
        except ValueError as err:
            raise UserError(str(err)) from None
        finally:
            distributed.shutdown()
        run["execution"] = {"device": str(device), "world_size": context.world_size,
                            "chunk_clips": args.chunk_clips}
        run["peak_memory"] = {"max_rss_mib": max(m["max_rss_mib"] for m in memory), "ranks": memory}
        if not context.is_main:  # rank 0 writes and prints the merged table once
            return 0
        if results.empty:
            raise UserError("no clip could be scored (no target class for any clip?)")
        summary = summarize_scores(results, reps=args.bootstrap, seed=args.seed)
    results.to_parquet(out / "results.parquet", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        shown = [c for c in ("model", "method", "clips", "energy_in_mask", "area_share", "pointing_hit",
                             "deletion_auc_pixel", "insertion_auc_pixel", "temporal_spread") if c in summary]
        print(summary[shown].round(3).to_string(index=False))
    print(f"wrote {out}", file=sys.stderr)
    return 0
