"""Reference solutions, one module per chapter (``solutions/01_hooks_basics.py`` …).

Module names start with the chapter number, so import them with
``course_utils.chapters.CHAPTERS["01_hooks_basics"].solutions()``. Learner notebooks never
import them; the checks do.
"""
