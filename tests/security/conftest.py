"""The recording upstream the end-to-end security tests share (one per test module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.recording import RecordingUpstream, recording_upstream


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordingUpstream]:
    with recording_upstream(tmp_path_factory.mktemp("upstream")) as recorder:
        yield recorder
