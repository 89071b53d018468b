"""Configuration for every pytest run in the repository, nbval's included.

Progress bars are for readers: a chapter's long loops show a ``tqdm`` bar in Jupyter.
Under pytest they are switched off (tqdm reads ``TQDM_DISABLE`` from the environment,
and the notebook kernels nbval starts inherit it), so no bar reaches the outputs that
nbval compares. ``tools/execute.py`` does the same when it stores a chapter's outputs.
"""

import os

os.environ["TQDM_DISABLE"] = "1"
