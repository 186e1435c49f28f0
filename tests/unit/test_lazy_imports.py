"""Startup imports only what the config uses: the OAuth libraries load only when a route has OAuth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_without_oauth_neither_pyjwt_nor_httpx2_is_imported() -> None:
    """They cost ~14 MiB of RSS and ~0.1 s of startup (bench/RESULTS.md, 11:07 UTC): only OAuth needs them."""
    code = (
        "import json, sys\n"
        "from mcpmux.config.parse import parse_config\n"
        "from mcpmux.proxy import Proxy\n"
        "from mcpmux.web.app import ProxyApp\n"
        "import mcpmux.cli, mcpmux.serve\n"
        "doc = {'mcpProxy': {'addr': '127.0.0.1:1'}, 'mcpServers': {'a': {'command': 'unused'}}}\n"
        "config = parse_config(json.dumps(doc), 'c.json', environ={}, expand_env=False)[0]\n"
        "ProxyApp(Proxy(config)).rebuild()\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('jwt', 'httpx2', 'cryptography')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
