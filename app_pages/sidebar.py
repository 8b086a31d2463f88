"""The shared sidebar: pick models (demo zoo, upload, path) and a clip; the choice goes to session_state."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from workbench.app_state import (
    ClipSource,
    ModelSource,
    checkpoint_path,
    demo_model_sources,
    probe_clips,
    store_upload,
    unique_label,
    video_path,
)
from workbench.errors import OptionError, UserError
from workbench.model_options import parse_model_options
from workbench.models import load_model, save_model
from workbench.models.inspect import describe_checkpoint, describe_model
from workbench.models.memory import parse_size
from workbench.video import VIDEO_EXTENSIONS, available_decoders

from .sessions import session_uploads
from .shared import (
    CHOSEN_CLIP,
    CHOSEN_MODELS,
    DEFAULT_MEMORY,
    MEMORY,
    MODEL_ERRORS,
    VIDEO_ERRORS,
    clip_info,
    error_message,
    load_source,
    memory_budget,
    model_error_message,
    without_server_paths,
)

MODEL_LABELS = "model_labels"  # the multiselect's key
ADDED = "added_models"  # label -> ModelSource for uploaded / typed checkpoints
MODEL_ERROR = "model_error"  # last add-a-checkpoint problem, shown until the next attempt
MODEL_ERROR_DETAILS = "model_error_details"  # what each release family made of that file
DESCRIPTIONS = "model_descriptions"  # label -> what an added checkpoint is (inspect's lines)
CHECKPOINT_UPLOAD = "checkpoint_upload"
CHECKPOINT_PATH = "checkpoint_path"
CHECKPOINT_OPTIONS = "checkpoint_options"  # KEY=VALUE words for release files (frames=16 classes=...)
CHECKPOINT_TYPES = ["pt", "pth", "ckpt", "bin", "tar"]
PROBE, UPLOAD, PATH = "Probe clip", "Upload", "Path"  # where the clip comes from (radio options)
DECODER = "decoder"  # session_state: the video decoder of this session (None: the server's default)
DECODER_NAMES = {"auto": "auto (decord where installed, else PyAV)", "decord": "decord", "pyav": "PyAV"}


def _with_options(source: ModelSource) -> ModelSource:
    """With options typed (release files: frames, classes, ...), the checkpoint loaded with them and
    kept as a workbench checkpoint that records them, so every page loads it by path alone."""
    text = st.session_state.get(CHECKPOINT_OPTIONS, "").strip()
    if not text:
        return source
    overrides = parse_model_options(text.split())
    model = load_model(source.path, **overrides)
    with tempfile.TemporaryDirectory() as folder:
        resaved = save_model(model, Path(folder) / "model.pt")
        stored = store_upload(f"{Path(source.path).stem}.pt", resaved.read_bytes(), session_uploads())
    return ModelSource(source.label, str(stored), source.origin)


def _add_model(source: ModelSource, shown_name: str | None = None) -> None:
    """Load a new checkpoint once to check it; select it on success, remember the error if not."""
    added: dict[str, ModelSource] = st.session_state.setdefault(ADDED, {})
    try:
        source = _with_options(source)
        model = load_source(source)
    except UserError as err:  # a malformed option
        st.session_state[MODEL_ERROR] = error_message(err)
        return
    except MODEL_ERRORS as err:
        shown = shown_name or source.path
        message = model_error_message(source.path, err)
        # an upload is named as the user knows it, not by its temp file
        st.session_state[MODEL_ERROR] = message.replace(source.path, shown)
        st.session_state[MODEL_ERROR_DETAILS] = [line.replace(source.path, shown)
                                                 for line in _family_verdicts(source.path)]
        return
    st.session_state[MODEL_ERROR] = None
    st.session_state[MODEL_ERROR_DETAILS] = []
    same = [label for label, known in added.items() if known.path == source.path]
    if same:
        label = same[0]
    else:
        label = unique_label(f"{source.label} ({model.spec.scheme})", set(added) | _demo_labels())
        added[label] = ModelSource(label, source.path, source.origin, model.spec.scheme)
    # what the file is, as `inspect` says it (without its path: a stored upload's is a server path)
    st.session_state.setdefault(DESCRIPTIONS, {})[label] = describe_model(model, label).lines()[1:]
    selected = list(st.session_state.get(MODEL_LABELS, []))
    if label not in selected:
        st.session_state[MODEL_LABELS] = [*selected, label]


def _family_verdicts(path: str) -> list[str]:
    """What each release family made of a file that did not load (empty when it cannot be read at all)."""
    try:
        description = describe_checkpoint(path, **parse_model_options(
            st.session_state.get(CHECKPOINT_OPTIONS, "").split()))
    except (UserError, *MODEL_ERRORS):
        return []
    return [f"{v.family}: {v.verdict}" for v in description.families]


def _on_upload() -> None:
    upload = st.session_state.get(CHECKPOINT_UPLOAD)
    if upload is None:
        return
    path = store_upload(upload.name, upload.getvalue(), session_uploads())
    _add_model(ModelSource(Path(upload.name).stem or "upload", str(path), "upload"), shown_name=upload.name)


def _on_path() -> None:
    text = st.session_state.get(CHECKPOINT_PATH, "")
    if not text.strip():
        return
    try:
        path = checkpoint_path(text)
    except MODEL_ERRORS as err:
        st.session_state[MODEL_ERROR] = error_message(err)
        return
    _add_model(ModelSource(path.stem, str(path), "path"))


def _demo_labels() -> set[str]:
    return {source.label for source in demo_model_sources()}


def _models() -> list[ModelSource]:
    """The models section; returns the chosen sources in the order shown."""
    st.header("Models", divider="gray")
    demo = demo_model_sources()
    first_run = MODEL_LABELS not in st.session_state
    if first_run:
        st.session_state[MODEL_LABELS] = [source.label for source in demo]
        _linked_models()
    added: dict[str, ModelSource] = st.session_state.setdefault(ADDED, {})
    options = {source.label: source for source in demo} | added
    # drop labels whose file went away (the demo zoo can change while the app runs)
    st.session_state[MODEL_LABELS] = [label for label in st.session_state[MODEL_LABELS] if label in options]
    if not demo:
        st.info("No demo models are shipped yet (`python -m workbench demo --train`). "
                "Add a checkpoint below.", icon=":material/info:")
    labels = st.multiselect("Models to compare", list(options), key=MODEL_LABELS,
                            help="The shipped demo zoo (one probe-trained model per scheme) and any "
                                 "checkpoint you add below.")
    with st.expander("Add a checkpoint", expanded=bool(st.session_state.get(MODEL_ERROR))):
        st.file_uploader("Upload a checkpoint", type=CHECKPOINT_TYPES, key=CHECKPOINT_UPLOAD,
                         on_change=_on_upload,
                         help="Read with torch.load(weights_only=True): nothing in the file is executed.")
        st.text_input("or a checkpoint path on this machine", key=CHECKPOINT_PATH, on_change=_on_path,
                      placeholder="/path/to/model.pt")
        st.text_input("Options for released checkpoints (before adding)", key=CHECKPOINT_OPTIONS,
                      placeholder="frames=16 classes=/path/labels.txt",
                      help="What a release file does not record (the GSM / GSF / TSM / TSN releases; an "
                           "MMAction2 file without meta.cfg): frames, classes (a labels file, one name per "
                           "line), backbone, shift_div, input_size, resize. Space-separated KEY=VALUE, as "
                           "the CLI's --model-option.")
    if st.session_state.get(MODEL_ERROR):
        st.error(st.session_state[MODEL_ERROR], icon=":material/error:")
        details = st.session_state.get(MODEL_ERROR_DETAILS) or []
        if details:
            with st.expander("What each checkpoint family made of it"):
                st.text("\n".join(details))
    described = st.session_state.get(DESCRIPTIONS, {})
    for label in labels:
        if label in added and label in described:
            with st.expander(f"About {label}"):
                st.text("\n".join(line.strip() for line in described[label]))
    return [options[label] for label in labels]


def _linked_models() -> None:
    """A link may choose the models: ?checkpoint=PATH adds one (as the path box does), ?models=a,b
    picks among the demo and added ones (e.g. /attribution?checkpoint=/data/gsm.pt&models=gsm)."""
    link = st.query_params
    if link.get("checkpoint"):
        st.session_state[CHECKPOINT_PATH] = link["checkpoint"]
        _on_path()
    if link.get("models"):
        wanted = [name.strip() for name in link["models"].split(",") if name.strip()]
        known = {*_demo_labels(), *st.session_state.get(ADDED, {})}
        # an added model's label carries its scheme ("gsm224 (gsm)"): its first word names it too
        by_name = {label.split(" (")[0]: label for label in known} | {label: label for label in known}
        st.session_state[MODEL_LABELS] = [by_name[name] for name in wanted if name in by_name]


def _clip_name(label: str) -> str:
    """`move_left_00001` -> `move_left · #00001`."""
    stem, _, number = label.rpartition("_")
    return f"{stem} · #{number}" if stem and number.isdigit() else label


def _clip() -> ClipSource | None:
    """The clip section; returns the chosen clip when it can be read."""
    st.header("Clip", divider="gray")
    probe = probe_clips()
    origins = [PROBE, UPLOAD, PATH] if probe else [UPLOAD, PATH]
    origin = st.radio("Clip from", origins, horizontal=True, key="clip_origin")
    clip: ClipSource | None = None
    if origin == PROBE:
        by_label = {c.label: c for c in probe}
        linked = st.query_params.get("clip")  # a link may name the clip: /gates?clip=move_left_00000
        if "probe_clip" not in st.session_state and linked in by_label:
            st.session_state["probe_clip"] = linked
        label = st.selectbox("Probe clip", list(by_label), key="probe_clip",
                             format_func=_clip_name,
                             help="A link can pick it too: add ?clip=<name> to a page's address.")
        clip = by_label[label] if label else None
    elif origin == UPLOAD:
        upload = st.file_uploader("Upload a video", type=sorted(e.lstrip(".") for e in VIDEO_EXTENSIONS),
                                  key="video_upload")
        if upload is not None:
            stored = store_upload(upload.name, upload.getvalue(), session_uploads())
            clip = ClipSource(upload.name, str(stored), "upload")
    else:
        text = st.text_input("Video file or frame folder", key="video_path", placeholder="/path/to/video.mp4")
        if text.strip():
            try:
                clip = ClipSource(Path(text.strip()).name, str(video_path(text)), "path")
            except VIDEO_ERRORS as err:
                st.error(error_message(err), icon=":material/error:")
    if clip is None:
        return None

    def shown(message: str) -> str:  # an upload is named as the user knows it, not by its temp file
        named = message.replace(clip.path, clip.label) if clip.origin == "upload" else message
        return without_server_paths(named)

    try:
        info = clip_info(clip)
    except VIDEO_ERRORS as err:
        st.error(shown(error_message(err)), icon=":material/error:")
        return None
    fps = f", {info['fps']:.0f} fps" if info.get("fps") else ""
    truth = f" · class **{clip.true_class}**" if clip.true_class else ""
    st.caption(f"{info['num_frames']} frames, {info['width']}x{info['height']}{fps}{truth}")
    for note in info.get("warnings", []):
        st.warning(shown(note), icon=":material/warning:")
    needed = _frames_needed()
    if info["num_frames"] < needed:
        st.warning(f"{clip.label} has {info['num_frames']} frames, fewer than the {needed} the chosen models "
                   "take: frames are repeated", icon=":material/warning:")
    return clip


def _frames_needed() -> int:
    """The most frames any chosen model takes (0 when none loads)."""
    frames = [0]
    for source in st.session_state.get(CHOSEN_MODELS, []):
        try:
            frames.append(load_source(source).spec.frames)
        except MODEL_ERRORS:  # reported where the model is used
            continue
    return max(frames)


def chosen_decoder() -> str | None:
    """The decoder this session chose in the sidebar's settings (None: the server's default)."""
    return st.session_state.get(DECODER)


def _settings() -> None:
    """Settings of this session: the video decoder and the memory per analysis."""
    with st.expander("Settings"):
        st.text_input("Memory per analysis", value=DEFAULT_MEMORY, key=MEMORY,
                      help="How much memory one analysis of this session may take, e.g. 2GiB or 512MiB: "
                           "clips per pass (Integrated Gradients' steps, SmoothGrad's samples, Occlusion's "
                           "patches, deletion curves, temporal-test batches) follow from each model's "
                           "measured footprint; an analysis that cannot fit one clip says how much it needs.")
        try:
            wanted = parse_size(st.session_state.get(MEMORY) or DEFAULT_MEMORY)
        except OptionError as err:
            st.error(f"{err}; using {DEFAULT_MEMORY}", icon=":material/error:")
            wanted = parse_size(DEFAULT_MEMORY)
        used = memory_budget().total
        if used < wanted:
            st.caption(f"This server allows its analyses {used / 2**30:.1f} GiB together: each runs "
                       "within that.")
        choices = ["auto", *available_decoders()]
        st.selectbox("Video decoder", choices, key=DECODER, format_func=lambda n: DECODER_NAMES.get(n, n),
                     help="Which library decodes videos for this session: decord is the fast path where it "
                          "is installed (and exact); PyAV decodes every file decord cannot read exactly.")



def render() -> None:
    """Draw the sidebar and store the selection in session_state for every page."""
    with st.sidebar:
        st.session_state[CHOSEN_MODELS] = _models()
        st.session_state[CHOSEN_CLIP] = _clip()
        _settings()
