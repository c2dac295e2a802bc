"""python -m bench [--readers N] [--pages N] [--workers 1,2,4] [--sockets N] [--quick]"""

from bench.cli import main

if __name__ == "__main__":
    main()
