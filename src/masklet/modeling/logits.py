"""Fixed mask-logit values shared by the model, the predictors and training (defined once).

Point labels live with the prompt encoder (`masklet.modeling.prompt_encoder`), image
normalisation with `masklet.transforms`.
"""

from __future__ import annotations

# Logit written where the object is predicted absent: far below any threshold.
NO_OBJECT_SCORE = -1024.0
# A binary mask as confident logits: +MASK_LOGIT inside, -MASK_LOGIT outside
# (sigmoid(-10) ~ 4.5e-5). Used for mask prompts given as logits, for mask prompts used directly
# as output, and for the pixels another object wins under non-overlap.
MASK_LOGIT = 10.0
# Earlier low-res logits fed back with new clicks are clamped to +-LOGIT_CLAMP, as the
# reference does, so an object called hidden (NO_OBJECT_SCORE) does not swamp the prompt.
LOGIT_CLAMP = 32.0
