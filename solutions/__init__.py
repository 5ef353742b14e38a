"""Reference solutions, one module per chapter (``solutions/01_hooks_basics.py`` …).

Module names start with the chapter number, so import them with
``course_utils.chapters.solution_module("01_hooks_basics")``. Learner notebooks never
import them; the checks do.
"""
