"""The course's offline model zoo: tokenizer, training, checkpoints, evaluation and model cards.

Retrain everything with ``python -m course_utils.zoo`` (``--only NAME`` for one model).

Modules: :mod:`.checkpoint` (save, manifest; reading is :mod:`course_utils.checkpoint`), :mod:`.train` (reusable training loop),
:mod:`.batches` (seeded batch iterators), :mod:`.evaluate` (induction, ternary, IOI, facts,
logit lens, LM loss), :mod:`.corpus` (offline text), :mod:`.tokenizer`, :mod:`.recipes`
(how each model is trained), :mod:`.thresholds`, :mod:`.cards`. The models themselves are listed
once, in :data:`course_utils.course_models.COURSE_MODELS`.
"""
