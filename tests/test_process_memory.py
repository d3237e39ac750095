"""orion/process_memory.py: a node process imports no character-set detector, and requests
still decodes the Docker engine's JSON."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_a_node_process_imports_no_charset_detector_and_decodes_docker_json() -> None:
    """What ``orion node`` does before importing the node: requests then decodes an engine
    body without a declared charset as UTF-8, with no warning."""
    script = textwrap.dedent(
        """
        import sys, warnings
        warnings.simplefilter("error")
        from orion.process_memory import prepare_node_process
        prepare_node_process()
        import docker, requests
        assert sys.modules.get("charset_normalizer") is None, "a detector was imported"
        response = requests.models.Response()
        response._content = '{"message": "café"}'.encode()
        assert response.text == '{"message": "café"}' and response.json() == {"message": "café"}
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
