import atexit
import os
import shutil
import sys
import tempfile

# Test tensors are tiny: one OpenMP thread avoids spin-waits on a small, shared CPU (5-10x faster
# here). Set before torch is imported, so the CLI subprocesses of the tests inherit it too.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Caches the code writes (part counts, decoded data) go to a folder of this test session, never
# the user's: every session counts from scratch (blocks/cache.py).
if "SEESAW_CACHE_DIR" not in os.environ:
    os.environ["SEESAW_CACHE_DIR"] = tempfile.mkdtemp(prefix="seesaw-test-cache-")
    atexit.register(shutil.rmtree, os.environ["SEESAW_CACHE_DIR"], ignore_errors=True)

# Tests import the packages from the checkout, installed or not.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A throw-away PostgreSQL server (tests/pg_server.py): fixtures pg_server, pg_url, own_pg_server.
pytest_plugins = ["pg_server"]
