"""r1relay's engine: backend wire protocols turned into one small event vocabulary.

Nothing here imports Open WebUI; `install.py` inlines these modules into each
built function file, because Open WebUI cannot import a package of ours.
"""
