"""Settings shared by every test folder."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """One torch thread for the whole session.

    The test machine has 2 cores shared with other processes: several threads
    per process oversubscribe it, and one thread also keeps float reductions
    in the same order from run to run. Session scope puts it in place before
    any module- or session-scoped fixture builds or trains a model.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
