import os, signal
# A runner started in the background (`cmd &` in a script, some CI agents) ignores SIGINT, and the processes it starts
# inherit that, so the tests that press Ctrl-C would not be heard: a handled signal is reset for each child instead.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN: signal.signal(signal.SIGINT, signal.default_int_handler)
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
