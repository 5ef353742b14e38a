"""Task data the chapters use at run time: IOI prompts, factual recall, Python ternaries, repeated tokens,
generated English.

Modules: :mod:`.ioi`, :mod:`.facts`, :mod:`.recall`, :mod:`.ternary`, :mod:`.repeated`, :mod:`.english`.
"""
