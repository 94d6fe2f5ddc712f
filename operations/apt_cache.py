"""A worker's apt through the fleet's apt cache (apt-cacher-ng on the wheelhouse host, when the
fleet has one).

Example::

    apt_cache.apt_through_cache()   # before the worker's first apt operation
"""

from __future__ import annotations

from io import StringIO

from pyinfra.operations import files

from operations.roles import apt_proxy

APT_PROXY_FILE = "/etc/apt/apt.conf.d/90sglang-apt-cache"  # after other 90* proxies: it wins



def apt_through_cache() -> None:
    """On a worker: apt goes through the wheelhouse's apt-cacher-ng (when there is one)."""
    proxy = apt_proxy()
    if proxy:
        # One request at a time, retried: apt-cacher-ng drops a connection with pipelined
        # requests when one download fails upstream, and apt would fail every one queued on it.
        files.put(name="apt through the fleet's apt cache", src=StringIO(
            f'Acquire::http::Proxy "{proxy}";\nAcquire::http::Pipeline-Depth "0";\n'
            'Acquire::Retries "5";\n'), dest=APT_PROXY_FILE)
