"""One module of learner checks per chapter: ``from course_utils.checks import hooks_basics as checks``."""
