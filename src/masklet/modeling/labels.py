"""Point labels of SAM 2's prompt encoder, defined once (no PyTorch here: the prompt rules and
the command line read them without loading the model code)."""

PADDING_LABEL = -1  # a padding point: ignored by the prompt encoder
NEGATIVE_LABEL = 0  # a click outside the object (exclude)
POSITIVE_LABEL = 1  # a click on the object (include)
BOX_TOP_LEFT_LABEL = 2  # a box is given as its two corners
BOX_BOTTOM_RIGHT_LABEL = 3
NUM_POINT_LABELS = 4  # negative, positive, box top-left, box bottom-right
