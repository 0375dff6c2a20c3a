"""The worker's entry point: ``PYTHON -m dscbench.worker`` (workers/server.py is the loop).

The coordinator starts every worker with this command (workers/client.WORKER_MODULE), in
environments that may hold another dscbench; it stays put across versions, so a worker of
another version still starts and its handshake says what differs.
"""

from dscbench.workers.server import main

if __name__ == "__main__":
    main()
