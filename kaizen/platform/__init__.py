"""The bottom layer: settings, atomic files, the object store, git, processes, locks,
notifications, and the adapters over third-party internals. Imports nothing else of Kaizen.
"""
