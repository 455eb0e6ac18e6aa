import os
# Tests never reach the network.
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['HF_DATASETS_OFFLINE'] = '1'
os.environ.setdefault('MPLBACKEND', 'Agg')

import pytest

@pytest.fixture(scope='session')
def demo(tmp_path_factory):
    "The built-in demo set, built once for every test that trains on it."
    from pixelbytes.data import build
    out = tmp_path_factory.mktemp('data')/'demo'
    build('demo', out=out, progress=False)
    return out
