"""Streamlit glue shared by every page: cached loading, the sidebar's selection, progress, errors."""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
import torch

from analysis.gates import GateReport, gate_report
from analysis.zoo import (
    ModelSummary,
    Prediction,
    class_mismatch,
    complexity_config,
    confusion_frame,
    is_release,
    measured_cost,
    predict_video,
    summarize,
)
from analysis.zoo import complexity_table as zoo_complexity
from app_pages.heavy import run_heavy, server_queue
from workbench import access
from workbench.app_state import ClipSource, ModelSource, demo_metrics, file_stamp
from workbench.demo import TEST_SEED, demo_probe_dir
from workbench.device import prepare_model, resolve_device
from workbench.errors import CheckpointError, DatasetError, OptionError, VideoError
from workbench.evaluate import evaluate_model
from workbench.masks import probe_mask
from workbench.models import SCHEMES, load_model
from workbench.models.memory import Budget, measure_footprint, parse_size
from workbench.probe import mask_path
from workbench.video import get_decoder, using_decoder, video_info

# Errors whose message is for the user; anything else is our bug and should show as one.
# ValueError/KeyError/TypeError: a checkpoint whose spec names an unknown scheme or backbone.
MODEL_ERRORS = (CheckpointError, ValueError, KeyError, TypeError, OSError)
VIDEO_ERRORS = (VideoError, OSError, ValueError)

CHOSEN_MODELS = "chosen_models"  # session_state key: list[ModelSource] picked in the sidebar
CHOSEN_CLIP = "chosen_clip"  # session_state key: ClipSource | None picked in the sidebar
MEMORY = "analysis_memory"  # session_state key: the sidebar's memory per analysis ("4GiB")
DEFAULT_MEMORY = "4GiB"


def is_gated(source: ModelSource) -> bool:
    """True for a model of a scheme with gates (the scheme table says which)."""
    row = SCHEMES.get(source.scheme or "")
    return row is not None and row.gated


def server_policy() -> access.PathPolicy | None:
    """Where this server lets users' paths point (None: served without data roots, refused)."""
    address = st.get_option("server.address")
    if not access.is_served(address):
        return access.LOCAL
    roots = access.roots_from_env()
    if not roots:
        try:
            roots = list(st.secrets.get("workbench", {}).get("data_roots", []))
        except (FileNotFoundError, KeyError, AttributeError):  # no secrets.toml: no setting there
            roots = []
    return access.served_policy(roots) if roots else None


def without_server_paths(text: str) -> str:
    """`text` with every upload's server path replaced by the name it was uploaded under: a message
    never shows where this server keeps files."""
    root = re.escape(str(access.upload_root()))
    return re.sub(root + r"/[^/'\"\s]+/[0-9a-f]{16}-", "", text)


def admit_or_stop() -> None:
    """Install this server's path policy, or stop the run with a message: served without data roots,
    or not logged in where a login is configured."""
    policy = server_policy()
    if policy is None:  # served beyond this machine, but nothing says which folders users may read
        where = st.get_option("server.address") or "every interface"
        st.error(f"This workbench is served to other machines (server.address = {where}) and has no data "
                 f"roots: set {access.ROOTS_VAR} (folders joined by ':') or [workbench] data_roots in "
                 ".streamlit/secrets.toml, or serve it on 127.0.0.1 only. See the README, 'Serving the app "
                 "to a lab'.")
        st.stop()
    access.set_policy(policy)
    if login_required() and not getattr(st.user, "is_logged_in", False):
        st.title("Gate-Shift Workbench")
        st.button("Log in", on_click=st.login, type="primary")
        st.stop()


def login_required() -> bool:
    """True when Streamlit's login is configured (an [auth] section in secrets.toml)."""
    try:
        return "auth" in st.secrets
    except (FileNotFoundError, KeyError, AttributeError):  # no secrets.toml
        return False


def error_message(err: BaseException) -> str:
    """The first line of an error, as the user should read it (no server paths)."""
    text = str(err).strip()
    return without_server_paths(text.splitlines()[0]) if text else type(err).__name__


def model_error_message(path: str, err: BaseException) -> str:
    """What went wrong loading a checkpoint; errors that do not name the file say only that it cannot
    be used (a library's own text speaks of its internals, not of the file)."""
    if isinstance(err, (CheckpointError, access.PathNotAllowed)):
        return error_message(err)
    # e.g. torch.load's KeyError on some non-checkpoint files, or a spec naming an unknown scheme
    return without_server_paths(f"cannot load {path!r}: not a checkpoint this workbench can use")


@st.cache_resource(show_spinner=False, max_entries=32)
def _load_model(path: str, stamp: str) -> torch.nn.Module:
    """A checkpoint loaded once per (path, mtime+size); weights_only, never unpickles code."""
    return prepare_model(load_model(path), resolve_device("auto"))  # on the GPU when there is one


def load_source(source: ModelSource) -> torch.nn.Module:
    """The model of a source (cached); raises CheckpointError (or the spec's ValueError)."""
    try:
        stamp = file_stamp(source.path)
    except OSError:
        raise CheckpointError(f"cannot load {source.path!r}: no such file") from None
    return _load_model(source.path, stamp)


def decoder() -> str:
    """The video decoder this session uses (the sidebar's setting): part of every cache key that
    decodes, since the back ends may differ in the last levels of reduced-size frames."""
    return get_decoder()


@st.cache_data(show_spinner=False, max_entries=64)
def _probe_evaluation(path: str, stamp: str, probe: str, probe_stamp: str, decoder: str) -> dict[str, Any]:
    with using_decoder(decoder):
        return evaluate_model(_load_model(path, stamp), probe, progress=False)


@st.cache_data(show_spinner=False, max_entries=16)
def complexity_table(config: tuple[str, int, int, int], schemes: tuple[str, ...]) -> pd.DataFrame:
    """Params, FLOPs and interleaved latency for one (backbone, frames, size, classes) (cached)."""
    return zoo_complexity(config, list(schemes))


@st.cache_data(show_spinner=False, max_entries=256)
def _prediction(path: str, stamp: str, video: str, video_stamp: str, decoder: str) -> Prediction:
    with using_decoder(decoder):
        return predict_video(_load_model(path, stamp), video)


def _mask_stamp(video: str) -> str:
    """The stamp of a probe clip's mask file ('' without one): the gate report depends on it too."""
    mask = mask_path(Path(video).parent.parent, video)
    return file_stamp(mask) if mask.is_file() else ""


def memory_budget() -> Budget:
    """This session's memory per analysis (the sidebar's Settings), never more than the server's budget
    for all heavy work (`WORKBENCH_SERVER_MEMORY`): batches are planned to fit it, on top of what the
    server holds already (models, other sessions), so `held` is 0."""
    text = st.session_state.get(MEMORY) or DEFAULT_MEMORY
    try:
        wanted = parse_size(text)
    except OptionError:  # the sidebar shows the problem; the analysis keeps the default
        wanted = parse_size(DEFAULT_MEMORY)
    return Budget(min(wanted, server_queue().budget), held=0)


def job_cost(
    model: torch.nn.Module, clips: int = 1, backward: bool = False, inputs_per_item: float = 1.0
) -> int:
    """Bytes a job of `clips` clips per pass of this model needs, from its measured footprint
    (workbench.models.memory); its batches are planned within this session's budget, so at most that."""
    footprint = measure_footprint(model)
    return min(footprint.job_bytes(backward, clips, inputs_per_item), memory_budget().total)


def gates_on_clip(source: ModelSource, clip: ClipSource) -> GateReport:
    """Every gate analysis of a gated model on a clip, in this server's queue of heavy work; kept per
    model, clip and mask file versions and decoder."""
    key = ("gates", source.path, file_stamp(source.path), clip.path, file_stamp(clip.path),
           _mask_stamp(clip.path), decoder())
    model = load_source(source)

    def compute() -> GateReport:
        return gate_report(model, clip.path, probe_mask(clip.path), memory=budget)

    budget = memory_budget()
    # the budget only refuses or not: results do not depend on it, so it is not part of the key
    return run_heavy(key, f"the gates of {source.label}", job_cost(model, backward=True), 5.0, compute)


@st.cache_data(show_spinner=False, max_entries=64)
def _video_info(path: str, stamp: str, decoder: str) -> dict[str, Any]:
    with using_decoder(decoder):
        return video_info(path)


def clip_info(clip: ClipSource) -> dict[str, Any]:
    """Frame count, size and fps of the clip's video (cached); raises VideoError."""
    try:
        stamp = file_stamp(clip.path)
    except OSError:
        raise VideoError(f"cannot decode {clip.path!r}: no such file") from None
    return _video_info(clip.path, stamp, decoder())


def chosen_models() -> list[ModelSource]:
    """The models picked in the sidebar."""
    return list(st.session_state.get(CHOSEN_MODELS, []))


def chosen_clip() -> ClipSource | None:
    """The clip picked in the sidebar (None when none is usable)."""
    return st.session_state.get(CHOSEN_CLIP)


def load_chosen(sources: list[ModelSource]) -> list[tuple[ModelSource, torch.nn.Module]]:
    """Load the chosen models with a progress bar; a model that fails is reported and skipped."""
    loaded, failures = [], []
    bar = st.progress(0.0, text="loading models")
    for i, source in enumerate(sources):
        bar.progress(i / len(sources), text=f"loading {source.label} ({i + 1}/{len(sources)})")
        try:
            loaded.append((source, load_source(source)))
        except MODEL_ERRORS as err:
            failures.append(f"**{source.label}**: {model_error_message(source.path, err)}")
    bar.empty()
    for failure in failures:
        st.error(failure, icon=":material/error:")
    return loaded


def chosen_and_loaded() -> list[tuple[ModelSource, torch.nn.Module]]:
    """The sidebar's models, loaded; the page stops with a hint when there are none to show."""
    sources = chosen_models()
    if not sources:
        st.info("Choose one or more models in the sidebar.", icon=":material/arrow_back:")
        st.stop()
    loaded = load_chosen(sources)
    if not loaded:
        st.stop()
    return loaded


def probe_classes(probe: Path) -> list[str]:
    """Class names of a probe folder (classes.json), empty when it has none."""
    meta = probe / "classes.json"
    if not meta.is_file():
        return []
    return [entry["name"] for entry in json.loads(meta.read_text())["classes"]]


def probe_metrics(source: ModelSource, model: torch.nn.Module) -> tuple[dict[str, Any] | None, str]:
    """Metrics on the shipped probe clips (cached), or None and the reason why not."""
    probe = demo_probe_dir()
    if not (probe / "labels.csv").is_file():
        return None, "no probe clips are shipped yet"
    mismatch = class_mismatch(model.spec, probe_classes(probe))
    if mismatch:
        return None, f"not scored: {mismatch}"
    try:
        metrics = _probe_evaluation(source.path, file_stamp(source.path), str(probe),
                                    file_stamp(probe / "labels.csv"), decoder())
    except (DatasetError, *VIDEO_ERRORS, FileNotFoundError) as err:
        return None, f"not scored: {error_message(err)}"
    return metrics, f"shipped probe clips ({metrics['clips']} clips)"


def summaries(loaded: list[tuple[ModelSource, torch.nn.Module]]) -> list[ModelSummary]:
    """One summary per loaded model, with manifest metrics (demo) or probe-clip metrics (others)."""
    manifest = demo_metrics()
    result = []
    pending = [(s, m) for s, m in loaded if not manifest.get(str(Path(s.path).resolve()))]
    status = st.status(f"scoring {len(pending)} model(s) on the probe clips") if pending else None
    for source, model in loaded:
        summary = summarize(source.label, model)
        metrics = manifest.get(str(Path(source.path).resolve()))
        if metrics:
            clips = metrics.get("clips")
            summary.metrics = metrics
            count = f" ({clips} clips)" if clips else ""
            summary.metrics_source = f"probe test set, seed {TEST_SEED}{count}"
        else:
            if status is not None:
                status.update(label=f"scoring {source.label} on the probe clips")
            summary.metrics, text = probe_metrics(source, model)
            if summary.metrics:
                summary.metrics_source = text
            else:
                summary.metrics_note = text
        result.append(summary)
    if status is not None:
        status.update(label="scored on the probe clips", state="complete")
    return result


def complexity_tables(summaries: list[ModelSummary]) -> dict[tuple, pd.DataFrame]:
    """A complexity table per configuration among our own models (cached; latency measured once)."""
    configs: dict[tuple, set[str]] = {}
    for summary in summaries:
        if not is_release(summary.spec):  # releases are measured on themselves: measured_costs
            configs.setdefault(complexity_config(summary.spec), set()).add(summary.spec.scheme)
    tables = {}
    for config, schemes in configs.items():
        backbone, frames, size, _ = config
        with st.spinner(f"measuring parameters, FLOPs and latency ({backbone}, {frames} frames, {size} px)"):
            try:
                tables[config] = complexity_table(config, tuple(sorted(schemes)))
            except (ValueError, RuntimeError) as err:
                st.warning(f"no cost figures for {backbone} at {size} px: {error_message(err)}")
    return tables


@st.cache_data(show_spinner=False, max_entries=32)
def _measured_cost(path: str, stamp: str) -> dict[str, float]:
    return measured_cost(_load_model(path, stamp))


def measured_costs(loaded: list[tuple[ModelSource, torch.nn.Module]]) -> dict[str, dict[str, float]]:
    """Params, FLOPs and latency of each release model, measured on the model itself (cached)."""
    costs = {}
    for source, model in loaded:
        if is_release(model.spec):
            with st.spinner(f"measuring parameters, FLOPs and latency of {source.label}"):
                try:
                    costs[source.label] = _measured_cost(source.path, file_stamp(source.path))
                except (ValueError, RuntimeError) as err:
                    st.warning(f"no cost figures for {source.label}: {error_message(err)}")
    return costs


def predictions(
    loaded: list[tuple[ModelSource, torch.nn.Module]], clip: ClipSource
) -> dict[str, Prediction]:
    """Each model's prediction on the clip (cached), with a progress bar; failures reported."""
    result: dict[str, Prediction] = {}
    clip_stamp = file_stamp(clip.path)
    bar = st.progress(0.0, text="predicting")
    for i, (source, model) in enumerate(loaded):
        bar.progress(i / len(loaded), text=f"{source.label} on {clip.label} ({i + 1}/{len(loaded)})")
        stamp, chosen = file_stamp(source.path), decoder()
        try:
            # a forward at the model's size (224 px: a few hundred MB) is heavy work too: it takes its turn
            key = ("prediction", source.path, stamp, clip.path, clip_stamp, chosen)
            compute = partial(_prediction, source.path, stamp, clip.path, clip_stamp, chosen)
            label = f"{source.label}'s prediction"
            result[source.label] = run_heavy(key, label, job_cost(model), 1.0, compute)
        except VIDEO_ERRORS as err:
            st.error(f"**{source.label}** cannot read {clip.label}: {error_message(err)}",
                     icon=":material/error:")
    bar.empty()
    return result


def confusions(
    loaded: list[tuple[ModelSource, torch.nn.Module]], summaries: list[ModelSummary]
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Confusion matrix per model: recorded with its metrics, else measured on the probe clips."""
    result: dict[str, pd.DataFrame] = {}
    measured, missing = [], []
    bar = st.progress(0.0, text="confusion matrices")
    for i, ((source, model), summary) in enumerate(zip(loaded, summaries)):
        frame = confusion_frame(summary.metrics or {})
        if frame is None:
            bar.progress(i / len(loaded), text=f"confusion matrix of {source.label} on the probe clips")
            metrics, reason = probe_metrics(source, model)
            frame = confusion_frame(metrics or {})
            if frame is not None:
                measured.append(source.label)
            else:
                missing.append(f"{source.label} ({reason.removeprefix('not scored: ')})")
        if frame is not None:
            result[source.label] = frame
    bar.empty()
    notes = []
    if measured:
        notes.append(f"Measured on the shipped probe clips (few clips per class) for: {', '.join(measured)}.")
    if missing:
        notes.append(f"No confusion matrix for: {', '.join(missing)}.")
    return result, notes
