"""ADetailer: detect faces (hands, people...) with a YOLO model and repaint each one by inpainting.

Pure image helpers with the A1111 ADetailer extension's semantics (spec stage-semantics §1) live in
:mod:`.masks` (detections, filters, mask preprocessing, blur, per-mask prompts and strengths) and
:mod:`.crops` (the "inpaint only masked" crop, resize and paste-back). They import no torch.
"""
