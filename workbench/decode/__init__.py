"""The decoding layer under `workbench.video`: input resolution, limits, a PyAV probe and two back ends.

`sources` resolves what the caller passed, `limits` bounds it, `probe` reads the container once (frame
table, size, rotation, fps), and `pyav_decoder` / `decord_decoder` turn frame indices into upright uint8
RGB frames; `frame_folder` does the same for folders of images. `choice` says which back end decodes.
"""
