"""The stages: one module each, operations only, the top layer below the entry scripts and the
pipeline (operations/pipeline.py lists which stages each role runs). Every stage has
``reads(settings)`` and ``apply(settings, done)``; none imports another (operations/README.md).
"""
