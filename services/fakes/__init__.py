"""Offline stand-ins for the two upstreams: Moonshot (text) and jimeng-api (images).

Each fake is a real HTTP server that behaves like its upstream as described in
docs/upstreams.md, including the awkward parts (usage inside the last stream chunk,
jimeng errors as HTTP 200), so that the clients are tested against what they will
meet in production. Both also take injected faults through `/_fake/faults`.

    python -m services.fakes.moonshot --port 8801
    python -m services.fakes.jimeng --port 5100

Tests and the e2e harness can run one in-process with `serving.BackgroundServer`.
"""
