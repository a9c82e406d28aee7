"""CoDi Studio: any-to-any generation with Composable Diffusion (CoDi)."""

__version__ = "0.1.0"

import logging as _logging

# bitsandbytes warns on import, on every CPU without its optional `kernels` package, about a 4-bit
# kernel we do not use; keep that noise out of the CLI and the studio logs.
_logging.getLogger("bitsandbytes").setLevel(_logging.ERROR)
