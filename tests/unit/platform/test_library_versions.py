"""Every adapter over a library's internals checks the installed version against its range.

One test per adapter and case: the installed library is inside the range the adapter was
written for (this fails, naming library, installed version and range, when an install moves
outside it), and a version outside the range, or a missing library, is refused by name.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from kaizen.features import feast_adapter
from kaizen.pipeline import kfp_local_adapter
from kaizen.platform import library_versions, minio_adapter
from kaizen.platform.library_versions import UnsupportedLibraryVersionError
from kaizen.serving import kserve_adapter

# adapter, its library, versions just outside its range (and further out)
OUTSIDE: list[tuple[ModuleType, str, str]] = [
    *((feast_adapter, "feast", v) for v in ("0.66.2", "0.68.0", "1.0.0")),
    *((kserve_adapter, "kserve", v) for v in ("0.20.1", "0.22.0", "1.0.0")),
    *((kfp_local_adapter, "kfp", v) for v in ("2.16.0", "2.18.0", "3.0.0")),
    *((minio_adapter, "minio", v) for v in ("7.1.17", "7.3.0", "8.0.0", "8.0.1rc1")),
]
ADAPTERS = [feast_adapter, kserve_adapter, kfp_local_adapter, minio_adapter]


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda adapter: adapter.__name__)
def test_the_installed_library_is_a_version_the_adapter_was_written_for(
    adapter: ModuleType,
) -> None:
    try:
        adapter.check_version()
    except UnsupportedLibraryVersionError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.mark.parametrize(
    ("adapter", "library", "version"),
    OUTSIDE,
    ids=[f"{library}-{version}" for _, library, version in OUTSIDE],
)
def test_a_library_outside_the_range_is_refused_naming_library_version_and_range(
    monkeypatch: pytest.MonkeyPatch, adapter: ModuleType, library: str, version: str
) -> None:
    monkeypatch.setattr(library_versions, "installed_version", lambda name: version)
    with pytest.raises(UnsupportedLibraryVersionError) as refused:
        adapter.check_version()
    message = str(refused.value)
    assert f"{library} {version} is installed" in message
    assert str(adapter.SUPPORTED_VERSIONS) in message
    assert adapter.__name__ in message
    assert isinstance(refused.value, RuntimeError)
    if adapter is minio_adapter:
        assert "Minio._execute" in message  # the error says which internals are at stake


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda adapter: adapter.__name__)
def test_a_missing_library_is_refused(monkeypatch: pytest.MonkeyPatch, adapter: ModuleType) -> None:
    monkeypatch.setattr(library_versions, "installed_version", lambda name: None)
    with pytest.raises(UnsupportedLibraryVersionError, match=f"{adapter.LIBRARY} is not installed"):
        adapter.check_version()
