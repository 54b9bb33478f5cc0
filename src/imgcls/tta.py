"""Test-time augmentation, one vocabulary for training's test evaluation (``--test-tta``), ``imgcls
eval --tta`` and ``imgcls predict --tta``, so that a name means the same views everywhere and
``imgcls eval RUN --tta flip-shift`` gives the figure the run recorded.

- views of a whole batch, their logits averaged (``engine.evaluate.tta_logits``): ``none``;
  ``flip``, each image and its mirror; ``flip-shift`` (airbench's), that pair weighted 1/2 and the
  pair shifted one pixel each way (the image mirrored at its edge) 1/4 each;
- views of one image, their probabilities averaged (``predict.py``): ``ten_crop``, the four corners
  and the centre and their mirrors; ``multiscale``, the image at 0.875, 1 and 1.15 times its size.

Mirrored views are taken only for a model that saw mirrors in training.
"""

from __future__ import annotations

BATCH_VIEWS = ("none", "flip", "flip-shift")
IMAGE_VIEWS = ("ten_crop", "multiscale")
TTA = (*BATCH_VIEWS, *IMAGE_VIEWS)
