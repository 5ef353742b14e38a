"""The course's tooling, apart from what a learner's notebook imports: building notebooks
(:mod:`.build`), running them (:mod:`.kernel`, :mod:`.sandbox`), the learner's workspace
(:mod:`.workspace`), ``make progress`` (:mod:`.progress`), ``make grade`` (:mod:`.grade`) and
the exercise and solution sheets (:mod:`.sheets`). ``python -m course_utils`` drives them.
"""
