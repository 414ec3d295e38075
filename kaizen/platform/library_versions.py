"""The version check shared by the adapters over third-party libraries' private internals.

Kaizen reaches into the private parts of four libraries (KServe, minio, Feast, kfp.local),
each from one adapter module: ``kaizen/serving/kserve_adapter.py``,
``kaizen/platform/minio_adapter.py``, ``kaizen/features/feast_adapter.py`` and
``kaizen/pipeline/kfp_local_adapter.py``. Each names the versions it was written for in a
``SUPPORTED_VERSIONS`` specifier set and checks the installed version with
:func:`require_version` before it is first used, so a library that moved fails loudly,
naming itself, instead of subtly (a private method gone, a log line reworded, a function
called with other inputs).

The installed version is read once per process (``importlib.metadata``); a check costs a
dictionary lookup and a specifier comparison.
"""

from __future__ import annotations

import functools

from packaging.specifiers import SpecifierSet


class UnsupportedLibraryVersionError(RuntimeError):
    """An adapter's library is missing or installed at a version it was not written for.

    Attributes:
        library: Distribution name (``kserve``, ``minio``, ``feast``, ``kfp``).
        installed: Installed version; None if the library is not installed.
        supported: The range the adapter was written for.
        adapter: The adapter module that needs it.
    """

    def __init__(
        self, library: str, installed: str | None, supported: SpecifierSet, adapter: str, uses: str
    ) -> None:
        self.library = library
        self.installed = installed
        self.supported = supported
        self.adapter = adapter
        if installed is None:
            message = (
                f"{library} is not installed, but {adapter} needs {library} {supported}; "
                "install the project's dependencies (pyproject.toml pins them)"
            )
        else:
            message = (
                f"{library} {installed} is installed, but {adapter} was written for {library} "
                f"{supported} (it uses {library} internals: {uses}). Install a {library} "
                f"version in {supported} (pyproject.toml pins it), or check {adapter} against "
                f"{library} {installed} and then widen its SUPPORTED_VERSIONS"
            )
        super().__init__(message)


@functools.cache
def installed_version(library: str) -> str | None:
    """The installed version of distribution ``library``; None if it is not installed."""
    from importlib import metadata  # imported on first use: it costs ~30 ms at start-up

    try:
        return metadata.version(library)
    except metadata.PackageNotFoundError:
        return None


def require_version(library: str, supported: SpecifierSet, adapter: str, uses: str) -> str:
    """The installed version of ``library`` if it is in ``supported``; else raise.

    Pre-releases inside the range count as inside it (``0.21.1rc1`` for ``>=0.21,<0.22``).

    Args:
        library: Distribution name.
        supported: The versions the adapter was written for.
        adapter: The adapter module, named in the error.
        uses: What the adapter uses of the library's internals, named in the error.

    Raises:
        UnsupportedLibraryVersionError: naming the library, the installed version and
            ``supported``.
    """
    installed = installed_version(library)
    if installed is None or not supported.contains(installed, prereleases=True):
        raise UnsupportedLibraryVersionError(library, installed, supported, adapter, uses)
    return installed
