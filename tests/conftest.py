import os
# Tests never reach the network.
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['HF_DATASETS_OFFLINE'] = '1'
os.environ.setdefault('MPLBACKEND', 'Agg')
