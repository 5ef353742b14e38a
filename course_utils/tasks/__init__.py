"""Task data the chapters use at run time: IOI prompts, factual recall, Python ternaries, repeated tokens.

Modules: :mod:`.ioi`, :mod:`.facts`, :mod:`.ternary`, :mod:`.repeated`.
"""
