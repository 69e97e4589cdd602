"""Test-session setup: one JAX persistent compilation cache for the whole run.

Many tests build the same small networks afresh (new closures, the same XLA program),
and the CLI, notebook and kill/resume tests start Python processes that compile what the
test process already compiled. A cache keyed on the compiled program serves them all;
it lives in a temporary folder of this run (set through the environment, so
subprocesses share it) and changes no result: a cached executable is the one XLA built.
"""
import atexit
import os
import shutil
import tempfile

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _dir = tempfile.mkdtemp(prefix="gsnn-tests-xla-cache-")
    atexit.register(shutil.rmtree, _dir, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _dir
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
