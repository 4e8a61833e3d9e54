"""Execute a staged run: the only step on the network (see `engine`).

`limiter` paces requests per model, `clients` is the run's shared HTTP client, `engine` sends the
payload files and uses the cache, `results` turns what came back into evidence and check lines.
"""

from harness.execute.clients import ClientPool
from harness.execute.engine import execute_run
from harness.execute.limiter import RateLimiter, backoff_delay
from harness.execute.options import ExecuteOptions
from harness.execute.results import CellOutcome, ExecutionSummary

__all__ = ["CellOutcome", "ClientPool", "ExecuteOptions", "ExecutionSummary", "RateLimiter", "backoff_delay",
           "execute_run"]
