"""What ``orion node`` sets up before it imports the node (issue 16 item 5).

requests, under the Docker SDK, imports a character-set detector (charset_normalizer: 25
modules, ~2.4 MB of RSS) that only ``Response.text`` on a body without a declared charset uses.
The Docker engine answers JSON (UTF-8), and without a detector requests decodes such a body as
UTF-8 (``Response.apparent_encoding``), a fallback requests supports and documents.
"""

from __future__ import annotations

import sys
import warnings

_CHARSET_DETECTORS = ("chardet", "charset_normalizer")  # what requests.compat tries, in order


def prepare_node_process() -> None:
    skip_charset_detection()


def skip_charset_detection() -> None:
    """Make requests find no character-set detector (a ``None`` in ``sys.modules`` turns the
    import into ImportError, which requests handles) and silence its warning about that.
    Before requests is first imported; a detector some other module imported stays."""
    for name in _CHARSET_DETECTORS:
        if name in sys.modules:
            return
    for name in _CHARSET_DETECTORS:
        sys.modules[name] = None  # type: ignore[assignment]
    warnings.filterwarnings("ignore", message="Unable to find acceptable character detection dependency")
