"""python -m services.doctor"""

from __future__ import annotations

from services.doctor.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
